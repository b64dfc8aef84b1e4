"""Prepared policies and the compile caches (memory and disk: corrupted, foreign or tampered
entries are never trusted), and static checks that agree with run time.
"""

from __future__ import annotations

import datetime as dt

import pytest
from policy_harness import (
    AS_OF,
    CACHED,
    COMBINING,
    CPF,
    error_reasons,
    policy,
    serasa,
    source,
)

from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import check_source, clear_memory_cache, compile_policy

# ---- prepared policies and caches ----------------------------------------------------------


def test_prepared_policy_is_reusable_with_independent_results():
    prepared = policy(COMBINING)
    inputs = [{"valor": 500}, {"valor": 20_000, "atraso": 120}, {"valor": 5}, {"valor": 2_000}] * 3
    decisions = [prepared.evaluate(data) for data in inputs]
    expected = [("approve", ["PADRAO"]), ("deny", ["ATRASO_GRAVE", "VALOR_ALTO", "VALOR_MUITO_ALTO"]),
                ("approve", ["VALOR_BAIXO"]), ("review", ["VALOR_ALTO"])] * 3
    assert [(d.outcome, d.reason_codes) for d in decisions] == expected
    assert decisions[0].reasons is not decisions[4].reasons


def test_as_of_drives_today():
    body = """
input
  venc: date

rule vencido
  when venc < today
  review "VENCIDO" "vencido"

default approve
"""
    prepared = policy(body)
    assert prepared.evaluate({"venc": "2026-11-21"}, as_of=AS_OF).outcome == "review"
    assert prepared.evaluate({"venc": "2026-11-22"}, as_of=AS_OF).outcome == "approve"
    assert prepared.evaluate({"venc": "2026-11-21"}, as_of=dt.date(2026, 11, 1)).outcome == "approve"


def test_memory_cache_returns_the_same_prepared_policy():
    text = source(CACHED) + "# memória\n"
    first = compile_policy(text)
    assert compile_policy(text) is first
    assert compile_policy(text + "\n# outro\n") is not first


def _decisions(prepared):
    _, connectors = serasa({"score": {"value": 400}})
    return [prepared.evaluate(data, connectors=connectors, trace="full").to_dict()
            for data in ({"valor": 5}, {"valor": 100}, {"valor": 5_000})]


def test_disk_cache_reload_yields_identical_decisions(tmp_path):
    text = source(CACHED) + "# disco\n"
    clear_memory_cache()
    fresh = compile_policy(text, cache_dir=tmp_path)
    expected = _decisions(fresh)
    assert len(list(tmp_path.glob("*.regc"))) == 1
    clear_memory_cache()
    reloaded = compile_policy(text, cache_dir=tmp_path)
    assert reloaded is not fresh
    assert reloaded.meta.generated_source == fresh.meta.generated_source
    strip = lambda ds: [{**d, "connector_calls": [{**c, "duration_ms": 0} for c in d["connector_calls"]]} for d in ds]  # noqa: E731
    assert strip(_decisions(reloaded)) == strip(expected)


@pytest.mark.parametrize("garbage", [b"", b"garbage", b"\x00" * 8 + b"xx", (10**12).to_bytes(8, "big") + b"x"])
def test_corrupted_cache_file_is_ignored_and_rewritten(tmp_path, garbage):
    text = source(CACHED) + "# corrompido\n"
    clear_memory_cache()
    expected = _decisions(compile_policy(text, cache_dir=tmp_path))
    [cache_file] = tmp_path.glob("*.regc")
    good = cache_file.read_bytes()
    cache_file.write_bytes(garbage)
    clear_memory_cache()
    prepared = compile_policy(text, cache_dir=tmp_path)
    assert [d["outcome"] for d in _decisions(prepared)] == [d["outcome"] for d in expected]
    assert cache_file.read_bytes() == good


def _rewrite_cache(cache_file, meta_blob=None, code_blob=None):
    blob = cache_file.read_bytes()
    size = int.from_bytes(blob[:8], "big")
    meta_blob = blob[8:8 + size] if meta_blob is None else meta_blob
    code_blob = blob[8 + size:] if code_blob is None else code_blob
    cache_file.write_bytes(len(meta_blob).to_bytes(8, "big") + meta_blob + code_blob)


@pytest.mark.parametrize("part", ["meta", "code"])
def test_cache_entry_of_the_wrong_shape_is_ignored(tmp_path, part):
    import marshal
    import pickle

    text = source(CACHED) + f"# forma {part}\n"
    clear_memory_cache()
    compile_policy(text, cache_dir=tmp_path)
    [cache_file] = tmp_path.glob("*.regc")
    if part == "meta":
        _rewrite_cache(cache_file, meta_blob=pickle.dumps({"not": "meta"}))
    else:
        _rewrite_cache(cache_file, code_blob=marshal.dumps(42))
    clear_memory_cache()
    assert compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5}).outcome == "approve"


def test_tampered_cache_is_not_trusted(tmp_path):
    text = source(CACHED) + "# adulterado\n"
    clear_memory_cache()
    assert compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5_000}).reason_codes[0] == "CARA"
    [cache_file] = tmp_path.glob("*.regc")
    blob = cache_file.read_bytes()
    assert blob.count(b"1234") >= 1  # the literal 1_234 BRL, hoisted as _Decimal('1234')
    cache_file.write_bytes(blob.replace(b"1234", b"9234"))
    clear_memory_cache()
    decision = compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5_000},
                                                                  connectors=serasa({"score": {"value": 900}})[1])
    assert decision.outcome == "review" and decision.reason_codes == ["CARA"]


# ---- more static/runtime consistency ------------------------------------------------------


def test_cpf_compared_with_a_formatted_literal():
    body = """
input
  doc: cpf

rule bloqueado
  when doc == "529.982.247-25"
  deny "BLOQUEADO" "CPF bloqueado"

default approve
"""
    try:
        prepared = compile_policy(source(body))
    except PolicyError:
        return  # rejecting the comparison statically is also correct
    assert prepared.evaluate({"doc": CPF}).outcome == "deny"


def test_mixing_business_and_calendar_days_is_caught_or_works():
    body = """
input
  urgente: bool

let prazo = if urgente then 5 business days else 10 days

rule longo
  when prazo > 7 days
  review "LONGO" "prazo longo"

default approve
"""
    try:
        check_source(source(body))
    except PolicyError:
        return  # a static error is a correct answer
    decision = compile_policy(source(body)).evaluate({"urgente": True})
    assert not [r for r in error_reasons(decision) if r.error["code"] == "INTERNAL_ERROR"]
