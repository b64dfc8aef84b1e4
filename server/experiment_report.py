"""The report of an experiment, per arm: volume, outcome rates and the average limit with 95%
confidence intervals; for each shadow challenger, the disagreement matrix with the arm that
decided and the rules behind the disagreements; once the portfolio knows how customers paid, the
bad rate per arm (a receivable unpaid N days after its due date).

Intervals: Wilson for rates (sound for small counts and rates near 0 or 1), the normal
approximation for a mean (mean ± 1.96·s/√n).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import math
from decimal import Decimal, InvalidOperation

Z = 1.96
OUTCOMES = ("approve", "review", "deny")


def wilson(successes: int, n: int) -> list[float] | None:
    if n == 0:
        return None
    p = successes / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def mean_interval(values: list[Decimal]) -> dict | None:
    if not values:
        return None
    n = len(values)
    mean = sum(values, Decimal(0)) / n
    if n < 2:
        return {"mean": str(round(mean, 2)), "ci": None, "n": n}
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = Decimal(Z) * variance.sqrt() / Decimal(n).sqrt()
    return {"mean": str(round(mean, 2)), "ci": [str(round(mean - half, 2)), str(round(mean + half, 2))], "n": n}


def _money(outputs: dict, name: str | None) -> Decimal | None:
    value = outputs.get(name) if name else None
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _limit_output(rows: list[dict], wanted: str | None) -> str | None:
    """The output averaged: the one asked for, else `limite`/`limit`, else the first that reads as money."""
    if wanted:
        return wanted
    for row in rows[:50]:
        outputs = json.loads(row["outputs"] or "{}")
        for name in ("limite", "limit"):
            if name in outputs:
                return name
        for name, value in outputs.items():
            if isinstance(value, str) and _money(outputs, name) is not None:
                return name
    return None


def arm_stats(rows: list[dict], output: str | None) -> dict:
    n = len(rows)
    counts = collections.Counter(r["outcome"] for r in rows)
    limits = [v for v in (_money(json.loads(r["outputs"] or "{}"), output) for r in rows) if v is not None]
    return {"decisions": n,
            "outcomes": {o: {"count": counts.get(o, 0), "rate": round(counts.get(o, 0) / n, 4) if n else None,
                             "ci": wilson(counts.get(o, 0), n)} for o in OUTCOMES},
            "average_limit": mean_interval(limits)}


def disagreement(decided: dict[str, dict], shadows: list[dict], top: int = 10) -> dict:
    matrix = {a: {b: 0 for b in OUTCOMES} for a in OUTCOMES}
    rules: collections.Counter = collections.Counter()
    paired = differ = 0
    for shadow in shadows:
        main = decided.get(shadow["decision_id"])
        if main is None:
            continue
        paired += 1
        row = matrix.setdefault(main["outcome"], {b: 0 for b in OUTCOMES})
        row[shadow["outcome"]] = row.get(shadow["outcome"], 0) + 1
        if main["outcome"] != shadow["outcome"]:
            differ += 1
            mine, theirs = set(json.loads(main["rules"] or "[]")), set(json.loads(shadow["rules"] or "[]"))
            rules.update(("shadow", r) for r in theirs - mine)
            rules.update(("decided", r) for r in mine - theirs)
    return {"paired": paired, "disagreements": differ, "rate": round(differ / paired, 4) if paired else None,
            "ci": wilson(differ, paired), "matrix": matrix,
            "rules": [{"rule": rule, "fired_only_in": side, "count": count}
                      for (side, rule), count in rules.most_common(top)]}


def bad_customers(db, as_of: dt.date, days: int) -> tuple[set[str], set[str]] | None:
    """(hashes of customers with receivables due long enough ago to judge, of those the bad ones),
    or None when the store holds no portfolio."""
    tables = set(db.table_names())
    if not {"customers", "receivables"} <= tables:
        return None
    cutoff = (as_of - dt.timedelta(days=days)).isoformat()
    paid_sql = "(select coalesce(sum(cast(p.amount as real)), 0) from payments p where p.receivable_id = r.id)" \
        if "payments" in tables else "0"
    known, bad = set(), set()
    for document, amount, paid in db.execute(
            f"select c.document, cast(r.amount as real), {paid_sql} from receivables r join customers c "
            "on c.id = r.customer_id where r.due_date <= ?", [cutoff]):
        digest = hashlib.sha256(str(document).encode("utf-8")).hexdigest()
        known.add(digest)
        if paid + 0.005 < amount:
            bad.add(digest)
    return known, bad


def build_report(experiment: dict, rows: list[dict], db, *, output: str | None = None, bad_days: int = 60,
                 as_of: dt.date | None = None) -> dict:
    decided_rows = [r for r in rows if not r["shadow"]]
    output = _limit_output(decided_rows, output)
    by_arm: dict[str, list[dict]] = collections.defaultdict(list)
    shadow_rows: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        (shadow_rows if row["shadow"] else by_arm)[row["arm"]].append(row)
    decided = {r["decision_id"]: r for r in decided_rows}
    performance = bad_customers(db, as_of or dt.date.today(), bad_days)
    arms = []
    for arm in experiment["arms"]:
        shadow = arm["share"] == 0 and arm["role"] == "challenger"
        mine = shadow_rows[arm["arm"]] if shadow else by_arm[arm["arm"]]
        entry = {"arm": arm["arm"], "role": arm["role"], "shadow": shadow, "revision": arm["revision"],
                 "share": arm["share"] / 100, "sample": arm["sample"], **arm_stats(mine, output)}
        if shadow:
            entry["disagreement"] = disagreement(decided, mine)
        elif performance is not None:
            known, bad = performance
            customers = {r["document_hash"] for r in mine if r["document_hash"] in known}
            count = len(customers & bad)
            entry["bad_rate"] = {"customers": len(customers), "bad": count,
                                 "rate": round(count / len(customers), 4) if customers else None,
                                 "ci": wilson(count, len(customers)), "days_late": bad_days}
        arms.append(entry)
    return {"experiment": experiment["name"], "policy": experiment["policy"], "status": experiment["status"],
            "key": experiment["key_field"], "champion_revision": experiment["champion_revision"],
            "limit_output": output, "decisions": len(decided_rows), "arms": arms}
