"""Backtest: evaluate a policy (and another, for swap sets) on a dataset of applications.

The dataset (CSV, JSON Lines or Parquet) has one application per row: its input fields,
connector answers, `as_of`, a label and an amount; lab/dataset.py reads it and says how.

Rows that cannot be read are counted and listed (row number, column, what is wrong), never fatal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from regua.engine.prepared import InvalidInput
from regua.portfolio import spreadsheet

from .common import OUTCOMES, add_counts, as_decimal, money_outputs
from .cuts import group_order, parse_cuts
from .dataset import DatasetConnectors, parse_label

MAX_LISTED_ERRORS = 200
_BRAZILIAN = {"money": lambda v: spreadsheet.number_text(v, True), "decimal": lambda v: spreadsheet.number_text(v, True),
              "percent": lambda v: spreadsheet.number_text(v.removesuffix("%").strip(), True) + "%"
              if v.strip().endswith("%") else spreadsheet.number_text(v, True),
              "date": spreadsheet.date_text, "bool": spreadsheet.bool_text}


@dataclass
class PolicyStats:
    outcomes: dict[str, int] = field(default_factory=dict)
    money_total: dict[str, Decimal] = field(default_factory=dict)  # over approved rows
    labelled: dict[str, int] = field(default_factory=dict)  # outcome -> rows with a label
    bad: dict[str, int] = field(default_factory=dict)  # outcome -> bad rows
    amount: dict[str, Decimal] = field(default_factory=dict)  # outcome -> amount
    bad_amount: dict[str, Decimal] = field(default_factory=dict)  # outcome -> amount of bad rows
    # outcome -> amount of labelled rows: the exposure expected loss is a share of (rows without a
    # label say nothing about loss, so they stay out of the denominator, as out of bad rates)
    labelled_amount: dict[str, Decimal] = field(default_factory=dict)

    def merge(self, other: "PolicyStats") -> None:
        for name in ("outcomes", "labelled", "bad", "money_total", "amount", "bad_amount", "labelled_amount"):
            add_counts(getattr(self, name), getattr(other, name))

    def to_dict(self, money: tuple[str, ...]) -> dict:
        n = sum(self.outcomes.values())
        approved = self.outcomes.get("approve", 0)
        out: dict[str, Any] = {
            "decisions": n,
            "outcomes": {o: self.outcomes.get(o, 0) for o in sorted(set(OUTCOMES) | set(self.outcomes))},
            "rates": {o: _rate(self.outcomes.get(o, 0), n) for o in sorted(set(OUTCOMES) | set(self.outcomes))},
            "approved_outputs": {m: {"total": str(self.money_total.get(m, Decimal(0)).quantize(Decimal("0.01"))),
                                     "average": str((self.money_total.get(m, Decimal(0)) / approved)
                                                    .quantize(Decimal("0.01"))) if approved else None}
                                 for m in money},
        }
        if self.labelled:
            out["bad_rates"] = {o: {"labelled": self.labelled.get(o, 0), "bad": self.bad.get(o, 0),
                                    "bad_rate": _rate(self.bad.get(o, 0), self.labelled.get(o, 0))}
                                for o in sorted(self.labelled)}
            declined = [o for o in self.labelled if o != "approve"]
            out["bad_rate_approved"] = _rate(self.bad.get("approve", 0), self.labelled.get("approve", 0))
            out["bad_rate_declined"] = _rate(sum(self.bad.get(o, 0) for o in declined),
                                             sum(self.labelled.get(o, 0) for o in declined))
            out["expected_loss"] = self._expected_loss(declined)
        if self.amount:
            out["amounts"] = {o: {"amount": str(self.amount[o]), "bad_amount": str(self.bad_amount.get(o, Decimal(0)))}
                              for o in sorted(self.amount)}
        return out

    def _expected_loss(self, declined: list[str]) -> dict[str, dict | None]:
        """Expected loss of the approved, the declined (review and deny) and each outcome: the
        exposure (amount) of the bad rows, loss given default taken as 100% of it, and its share of
        the labelled rows' exposure. Without amounts (no --amount) each group is None."""
        groups = {"approved": ["approve"], "declined": declined,
                  **{o: [o] for o in sorted(set(OUTCOMES) | set(self.labelled)) if o != "approve"}}
        if not self.amount:
            return dict.fromkeys(groups)
        out = {}
        for name, outcomes in groups.items():
            exposure = sum((self.labelled_amount.get(o, Decimal(0)) for o in outcomes), Decimal(0))
            loss = sum((self.bad_amount.get(o, Decimal(0)) for o in outcomes), Decimal(0))
            out[name] = {"exposure": str(exposure), "expected_loss": str(loss),
                         "expected_loss_rate": round(float(loss / exposure), 4) if exposure else None}
        return out


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


SWAP_SETS = ("both_approve", "swap_in", "swap_out", "both_decline")


@dataclass
class BacktestReport:
    policy: str = ""
    version: str = ""
    against: str | None = None
    against_version: str | None = None
    money: tuple[str, ...] = ()
    rows: int = 0
    evaluated: int = 0
    errors: int = 0
    error_list: list[dict] = field(default_factory=list)
    stats: PolicyStats = field(default_factory=PolicyStats)
    other: PolicyStats | None = None
    swaps: dict[str, list] = field(default_factory=dict)  # set -> [count, amount, labelled, bad]
    cuts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # field -> value -> outcome -> n
    # With keep_rows, a chunk's decisions ([row, outcome, other outcome, money outputs…]) for the CSV;
    # a merge drops them (the CLI writes them as the partial reports arrive).
    decisions: list[list] = field(default_factory=list)

    def merge(self, other: "BacktestReport") -> "BacktestReport":
        self.policy, self.version = self.policy or other.policy, self.version or other.version
        self.against, self.against_version = self.against or other.against, self.against_version or other.against_version
        self.money = self.money or other.money
        self.rows += other.rows
        self.evaluated += other.evaluated
        self.errors += other.errors
        self.error_list.extend(other.error_list[: max(0, MAX_LISTED_ERRORS - len(self.error_list))])
        self.stats.merge(other.stats)
        if other.other is not None:
            if self.other is None:
                self.other = PolicyStats()
            self.other.merge(other.other)
        for key, values in other.swaps.items():
            mine = self.swaps.setdefault(key, [0, Decimal(0), 0, 0])
            for i, value in enumerate(values):
                mine[i] += value
        for key, groups in other.cuts.items():
            for value, outcomes in groups.items():
                add_counts(self.cuts.setdefault(key, {}).setdefault(value, {}), outcomes)
        return self

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "policy": {"name": self.policy, "version": self.version}, "rows": self.rows, "evaluated": self.evaluated,
            "errors": self.errors, "error_list": self.error_list, "result": self.stats.to_dict(self.money),
        }
        if self.other is not None:
            out["against"] = {"name": self.against, "version": self.against_version}
            out["against_result"] = self.other.to_dict(self.money)
            out["swap_sets"] = {name: {"count": c[0], "amount": str(c[1]), "labelled": c[2], "bad": c[3],
                                       "bad_rate": _rate(c[3], c[2])}
                                for name in SWAP_SETS for c in [self.swaps.get(name, [0, Decimal(0), 0, 0])]}
        if self.cuts:
            out["cuts"] = {key: [{"value": value, **dict(sorted(groups[value].items()))}
                                 for value in sorted(groups, key=group_order)] for key, groups in self.cuts.items()}
        return out


class Backtester:
    """Evaluates rows with a policy and, optionally, the policy it is compared against."""

    def __init__(self, prepared, against=None, label: str | None = None, amount: str | None = None,
                 by: tuple[str, ...] = (), as_of: str | None = None, keep_rows: bool = False):
        self.policies = [p for p in (prepared, against) if p is not None]
        self.keep_rows = keep_rows
        self.label, self.amount, self.by = label, amount, tuple(by)
        self.cuts = parse_cuts(self.by)  # CutError names a --by it cannot read
        self.as_of = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        self.money = tuple(money_outputs(prepared))
        names = sorted({spec.qualified_name for p in self.policies for spec in p.meta.connectors})
        self.connectors = DatasetConnectors(names)
        self.connector_names = tuple(names)
        self.known = [tuple(f.name for f in p.meta.input_type.fields) for p in self.policies]
        self._labels: dict = {}  # a label cell (text or whole number) -> parse_label's reading of it
        self._days: dict[str, dt.date] = {}  # an as_of cell -> its date
        # How a pt-BR spreadsheet's cell becomes the text the policy reads, by the field's type.
        self.brazilian = {f.name: _BRAZILIAN[str(f.type)] for p in self.policies for f in p.meta.input_type.fields
                          if str(f.type) in _BRAZILIAN}
        if amount:
            self.brazilian.setdefault(amount, _BRAZILIAN["money"])

    def empty(self) -> BacktestReport:
        first, second = self.policies[0], (self.policies[1] if len(self.policies) > 1 else None)
        return BacktestReport(first.name, first.version, second.name if second else None,
                              second.version if second else None, self.money,
                              other=PolicyStats() if second else None)

    def run(self, rows: list[tuple[int, dict]]) -> BacktestReport:
        report = self.empty()
        for number, row in rows:
            report.rows += 1
            try:
                self._one(number, row, report)
            except _BadRow as problem:
                report.errors += 1
                if len(report.error_list) < MAX_LISTED_ERRORS:
                    report.error_list.append({"row": number, "column": problem.column, "message": problem.message})
        return report

    def _one(self, number: int, row: dict, report: BacktestReport) -> None:
        if "__error__" in row:
            raise _BadRow(None, row["__error__"])
        if row.pop("__brazilian__", False):
            row = {k: self.brazilian[k](v) if k in self.brazilian and isinstance(v, str) else v for k, v in row.items()}
        answers = {}
        for name in self.connector_names:
            cell = row.get(name)
            if cell is None or cell == "":
                continue
            if isinstance(cell, str):
                try:
                    cell = msgspec.json.decode(cell)
                except msgspec.DecodeError as error:
                    raise _BadRow(name, f"the connector answer is not JSON: {error}") from None
            answers[name] = cell
        self.connectors.current = answers
        label = self._label(row.get(self.label)) if self.label else None
        amount = None
        if self.amount:
            cell = row.get(self.amount)
            if cell not in (None, ""):
                amount = as_decimal(cell)
                if amount is None:
                    raise _BadRow(self.amount, f"{str(cell)[:40]!r} is not an amount")
        cell = row.get("as_of")
        as_of = ((self._days.get(cell) if cell.__class__ is str else None) or self._day(cell)) if cell else self.as_of
        outcomes = []
        for index, (prepared, known) in enumerate(zip(self.policies, self.known)):
            # the policy's fields the row has (an empty cell is an absent field: its default applies)
            data = {k: v for k in known if (v := row.get(k)) is not None and v != ""}
            try:
                decision = prepared.evaluate(data, connectors=self.connectors, as_of=as_of)
            except InvalidInput as error:
                first = error.errors[0]
                raise _BadRow(first.path.removeprefix("input.").split(".")[0],
                              "; ".join(f"{e.path}: {e.message}" for e in error.errors)) from None
            except Exception as error:  # noqa: BLE001 — one row never stops a backtest; it is listed
                raise _BadRow(None, f"{prepared.name}: {type(error).__name__}: {error}") from None
            outcomes.append((decision, index))
        report.evaluated += 1
        if self.keep_rows:
            report.decisions.append([number, *[d.outcome for d, _ in outcomes],
                                     *[_cents(d.outputs.get(m)) for d, _ in outcomes for m in self.money],
                                     None if label is None else int(label), amount])
        for decision, index in outcomes:
            stats = report.stats if index == 0 else report.other
            outcome = decision.outcome
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
            if outcome == "approve":
                for name in self.money:
                    value = decision.outputs.get(name)
                    if value is not None:
                        stats.money_total[name] = stats.money_total.get(name, Decimal(0)) + Decimal(value)
            if label is not None:
                stats.labelled[outcome] = stats.labelled.get(outcome, 0) + 1
                stats.bad[outcome] = stats.bad.get(outcome, 0) + label
            if amount is not None:
                stats.amount[outcome] = stats.amount.get(outcome, Decimal(0)) + amount
                if label is not None:
                    stats.labelled_amount[outcome] = stats.labelled_amount.get(outcome, Decimal(0)) + amount
                if label:
                    stats.bad_amount[outcome] = stats.bad_amount.get(outcome, Decimal(0)) + amount
        if len(outcomes) > 1:
            mine, theirs = outcomes[0][0].outcome == "approve", outcomes[1][0].outcome == "approve"
            name = ("both_approve" if mine and theirs else "swap_in" if mine else "swap_out" if theirs
                    else "both_decline")
            counts = report.swaps.setdefault(name, [0, Decimal(0), 0, 0])
            counts[0] += 1
            counts[1] += amount or 0
            if label is not None:
                counts[2] += 1
                counts[3] += label
        for cut in self.cuts:
            if cut.connector is not None and cut.connector not in answers:  # a connector the policies do not ask
                answers[cut.connector] = _cell_answer(row.get(cut.connector))
            group = report.cuts.setdefault(cut.name, {}).setdefault(cut.value(row, answers), {})
            outcome = outcomes[0][0].outcome
            group[outcome] = group.get(outcome, 0) + 1


    def _label(self, cell) -> bool | None:
        label = self._labels.get(cell) if cell.__class__ is str or cell.__class__ is int else None
        if label is None:
            try:
                label = parse_label(cell)
            except ValueError as error:
                raise _BadRow(self.label, str(error)) from None
            if label is not None and (cell.__class__ is str or cell.__class__ is int) and len(self._labels) < 64:
                self._labels[cell] = label
        return label

    def _day(self, cell) -> dt.date:
        try:
            day = dt.date.fromisoformat(cell)
        except (TypeError, ValueError):
            raise _BadRow("as_of", f"{str(cell)[:40]!r} is not a date (AAAA-MM-DD)") from None
        if cell.__class__ is str:
            if len(self._days) > 10_000:
                self._days.clear()
            self._days[cell] = day
        return day


def _cell_answer(cell):
    """A connector column's answer for cutting only: what cannot be read is no answer."""
    if isinstance(cell, str) and cell:
        try:
            return msgspec.json.decode(cell)
        except msgspec.DecodeError:
            return None
    return cell


def _cents(value) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


class _BadRow(Exception):
    def __init__(self, column: str | None, message: str):
        super().__init__(message)
        self.column = column
        self.message = message
