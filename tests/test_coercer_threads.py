"""Coercers are built correctly whatever the threads do: a record another thread is building is
not "being built" for this one (a shared marker once handed this thread a stand-in that resolved to
itself: RecursionError on concurrent publishes), and a stand-in is never cached."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from regua.dsl import coercers
from regua.dsl import types as T
from regua.dsl.coercers import coercer


def _record(name: str) -> T.RecordType:
    return T.RecordType(name, (T.FieldSpec("score", T.INT), T.FieldSpec("nome", T.TEXT, required=False)))


def _cached_functions() -> list:
    return [function for _typ, function in coercers._COERCERS.values()]


def test_a_record_another_thread_is_building_is_built_here_too():
    record = _record("Resposta")
    started, release = threading.Event(), threading.Event()

    def other_thread_building():
        coercers._building().add((id(record), False, False))  # as _record_coercer does while it works
        started.set()
        release.wait(10)

    other = threading.Thread(target=other_thread_building)
    other.start()
    try:
        started.wait(10)
        function = coercer(record, strict=False)
        assert not getattr(function, "stand_in", False)
        assert function({"score": 700}) == {"score": 700, "nome": None}
        assert coercer(record, strict=False)({"score": 1}) == {"score": 1, "nome": None}
    finally:
        release.set()
        other.join()


def test_a_record_that_contains_itself_resolves_and_no_stand_in_is_cached():
    node = T.RecordType("No", ())
    object.__setattr__(node, "fields", (T.FieldSpec("valor", T.INT),
                                        T.FieldSpec("filhos", T.ListType(node), required=False, default=[])))
    function = coercer(node, strict=True)
    tree = {"valor": 1, "filhos": [{"valor": 2, "filhos": [{"valor": 3}]}]}
    assert function(tree) == {"valor": 1, "filhos": [{"valor": 2, "filhos": [{"valor": 3, "filhos": []}]}]}
    assert not any(getattr(f, "stand_in", False) for f in _cached_functions())


def test_many_threads_building_coercers_for_shared_records_all_get_working_ones():
    shared = _record("Bureau")  # like a connector's answer type: one object for every policy

    def build(n: int):
        coercers._COERCERS.clear()  # every thread builds again, at the same time as the others
        outer = T.RecordType(f"Pedido{n}", (T.FieldSpec("bureau", shared), T.FieldSpec("valor", T.INT)))
        return coercer(outer, strict=False)({"bureau": {"score": n}, "valor": n})["bureau"]["score"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(build, range(400))) == list(range(400))
    assert not any(getattr(f, "stand_in", False) for f in _cached_functions())
