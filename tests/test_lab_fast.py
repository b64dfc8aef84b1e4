"""The replay's fast path (regua.lab.replay_fast) reports exactly what the general path reports:
on decision logs the champion wrote with any facts, odd records mixed in (older input shapes,
damaged text, lookups not recorded or recorded in another shape, answers the contract refuses),
replayed with the candidate and cut by input fields and connector facts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lab import _connectors, bureau, customer, orders

from regua.engine import compile_file
from regua.engine.recorded import encode_answers
from regua.lab import replay_fast
from regua.lab.replay import Replayer

ROOT = Path(__file__).resolve().parent.parent
_champion = compile_file(ROOT / "policies" / "credito_b2b.regua")
_candidate = compile_file(ROOT / "examples" / "credito_b2b_candidato.regua")
BY = ("ciclos_sem_atraso", "campo_antigo", "bureau.serasa.score.value:100", "bureau.serasa.restrictions")
# cut by connector facts only: inputs are decoded typed (replay_fast.TypedInput), not validated as dicts
BY_ANSWERS = ("bureau.serasa.score.value:100", "bureau.serasa.restrictions")


def _oddity(record: dict, kind: str) -> dict:
    """The record as an older version, a damaged row or a partial log would hold it."""
    data = json.loads(record["input"])
    answers = json.loads(record["connector_answers"] or "[]")
    if kind == "unknown_field":
        data["campo_antigo"] = 7
    elif kind == "missing_required":
        data.pop("valor_pedido")
    elif kind == "null_default":
        data["saldo_em_aberto"] = None
    elif kind == "absent_default":
        data.pop("ciclos_sem_atraso", None)
    elif kind == "money_pt_br":
        data["valor_pedido"] = "1.234,56"
    elif kind == "money_number":
        data["valor_pedido"] = 1234.5  # written as a JSON number with a fraction
    elif kind == "money_whole":
        data["ticket_medio"] = 25000
    elif kind == "money_mills":
        data["valor_pedido"] = "1234.505"
    elif kind == "money_padded":
        data["valor_pedido"] = " 1234.50"
    elif kind == "int_as_text":
        data["dias_atraso_max"] = "5"
    elif kind == "int_as_number":
        data["dias_atraso_max"] = 5.0
    elif kind == "int_huge":
        data["dias_atraso_max"] = 10**19
    elif kind == "bool_as_int":
        data["ciclos_sem_atraso"] = True
    elif kind == "date_compact":
        data["data_fundacao"] = data["data_fundacao"].replace("-", "")
    elif kind == "document_bare":
        data["cnpj"] = "11222333000181"
    elif kind == "document_invalid":
        data["cnpj"] = "11.222.333/0001-00"
    elif kind == "not_json":
        return {**record, "input": "{not json"}
    elif kind == "not_object":
        return {**record, "input": "[1, 2]"}
    elif kind == "answers_not_json":
        return {**record, "connector_answers": "[{"}
    elif kind == "answers_other_shape":  # numbers as arguments: engine.recorded reads them as text
        answers = [{**a, "args": [1]} for a in answers] + [{"connector": 5}]
    elif kind == "not_recorded":
        answers = [a for a in answers if a["connector"] != "bureau.serasa"]
    elif kind == "unrecorded":
        answers = [{k: v for k, v in a.items() if k != "answer"} | {"status": "unrecorded"} for a in answers]
    elif kind == "bad_answer":
        answers = [{**a, "answer": {"score": "alto"}} if a.get("answer") is not None else a for a in answers]
    elif kind == "duplicate_lookup":
        answers = [{**a, "status": "failed", "error": "CONNECTOR_DOWN"} for a in answers if "answer" in a] + answers
    elif kind == "no_outputs":
        body = json.loads(record["body"])
        body.pop("outputs")
        return {**record, "body": json.dumps(body)}
    elif kind == "body_not_decision":
        return {**record, "body": '{"outcome": "approve", "reasons": [1]}'}
    return {**record, "input": json.dumps(data), "connector_answers": json.dumps(answers) if answers else None}


INPUT_ODDITIES = ["money_number", "money_whole", "money_mills", "money_padded", "int_as_text", "int_as_number",
                  "int_huge", "bool_as_int", "date_compact", "document_bare", "document_invalid"]
ODDITIES = ["unknown_field", "missing_required", "null_default", "absent_default", "money_pt_br", "not_json",
            "not_object", "answers_not_json", "answers_other_shape", "not_recorded", "unrecorded", "bad_answer",
            "duplicate_lookup", "no_outputs", "body_not_decision"]


def _log(entries) -> list[dict]:
    records = []
    for i, (order, serasa, conta, day, odd) in enumerate(entries):
        decision = _champion.evaluate(order, connectors=_connectors(serasa, conta), as_of=day)
        record = {"id": f"X{i:04d}", "as_of": day.isoformat(), "outcome": decision.outcome,
                  "body": json.dumps(decision.to_dict()), "input": json.dumps(order),
                  "connector_answers": encode_answers(decision.connector_calls)}
        records.append(_oddity(record, odd) if odd else record)
    return records


def _both(records: list[dict], prepared=_candidate, by=BY) -> tuple[dict, dict]:
    general = Replayer(prepared, by=by, keep=50, fast=False).replay(records).to_dict(top=50)
    fast = Replayer(prepared, by=by, keep=50).replay(records).to_dict(top=50)
    return general, fast


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.tuples(orders, bureau, customer, st.dates(dt.date(2025, 6, 1), dt.date(2026, 12, 31)),
                                  st.one_of(st.none(), st.none(), st.sampled_from(ODDITIES + INPUT_ODDITIES))),
                        min_size=1, max_size=16),
       repeat=st.integers(1, 3))
def test_the_fast_path_reports_what_the_general_path_reports(entries, repeat):
    records = _log(entries) * repeat  # the same recorded answers again: read from the answer cache
    for by in (BY, BY_ANSWERS, ()):
        general, fast = _both(records, by=by)
        assert fast == general


def test_every_oddity_is_replayed_alike_and_plain_records_take_the_fast_path(monkeypatch):
    order = {"cnpj": "11.222.333/0001-81", "faturamento_anual": "900000.00", "data_fundacao": "2010-01-01",
             "ticket_medio": "20000.00", "valor_pedido": "30000.00", "dias_atraso_max": 0, "ciclos_sem_atraso": 4}
    serasa = {"score": {"value": 450}, "restrictions": [{"kind": "pefin", "amount": "4000.00",
                                                          "date": "2024-01-01"}],
              "inquiries": [], "registration_status": "active"}
    conta = {"known": True, "has_limit": False, "limit": "0.00", "limit_blocked": False, "days_late_now": 0,
             "open_balance": "1000.00"}
    oddities = ODDITIES + INPUT_ODDITIES
    records = _log([(order, serasa, conta, dt.date(2026, 1, 5), odd) for odd in [None, *oddities, None]])
    for by in (BY, BY_ANSWERS):
        general, fast = _both(records, by=by)
        assert fast == general
    assert general["changed"] > 0 and general["errors"] > 0 and general["needs_live_lookup"]["decisions"] > 0
    assert general["fields"]["dropped"] == {"campo_antigo": 1}
    # a small answer cache is emptied when full and still gives the same report
    monkeypatch.setattr(replay_fast, "ANSWER_CACHE_SIZE", 1)
    assert _both(records * 3)[1] == _both(records * 3)[0]
    # the plain records, and those with oddities the fast path reads as the general one, never reach the
    # general path (inputs decoded typed: no cut reads the stored input)
    replayer = Replayer(_candidate)
    general_path = []
    monkeypatch.setattr(replayer, "_one", lambda record, report: general_path.append(record["id"]))
    replayer.replay(records)
    handled = {"null_default", "absent_default", "not_recorded", "unrecorded", "bad_answer", "duplicate_lookup",
               "no_outputs", "money_whole", "document_bare"}
    assert general_path == [f"X{i:04d}" for i, odd in enumerate(oddities, 1) if odd not in handled]


@pytest.mark.parametrize("prepared", [_champion, _candidate], ids=["champion", "candidate"])
def test_live_lookups_take_the_general_path(prepared):
    from regua.lab.replay import LiveLookups

    live = LiveLookups(_connectors(None, None), budget=0, cost_of=lambda name: 1)
    assert Replayer(prepared, live=live).fast is None
    assert Replayer(prepared).fast is not None


# ---- backtest: the dataset as csv.DictReader and pyarrow's to_pylist read it --------------------

def test_csv_rows_are_what_csv_dictreader_reads(tmp_path):
    import csv

    from regua.lab.dataset import read_rows

    text = ('a,b,c\n1,2,3\n\n4,5\n"multi\nline",6,7\n8,9,10,11\n12,,\n')
    (tmp_path / "d.csv").write_text(text, encoding="utf-8")
    reader = csv.DictReader(text.splitlines(keepends=True))
    expected = []
    for row in reader:
        expected.append((reader.line_num, {"__error__": "1 cell(s) more than the header has"} if None in row else row))
    assert list(read_rows(tmp_path / "d.csv")) == expected
    assert expected[1] == (4, {"a": "4", "b": "5", "c": None}) and expected[2][0] == 6


def test_parquet_rows_are_pyarrow_rows_made_plain(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from regua.lab.dataset import _plain, read_rows

    table = pa.table({"s": ["x", None], "i": [1, 2], "b": [True, None], "d": [dt.date(2026, 1, 2), None],
                      "f": [1.5, 2.0], "n": [{"k": dt.date(2026, 1, 3)}, None], "l": [[1, 2], []]})
    pq.write_table(table, tmp_path / "d.parquet")
    expected = [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]
    assert [row for _, row in read_rows(tmp_path / "d.parquet")] == expected
    assert expected[0]["d"] == "2026-01-02" and expected[0]["n"] == {"k": "2026-01-03"}
