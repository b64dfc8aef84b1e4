"""The policy lab on a real Dask cluster: a `distributed.LocalCluster` of two worker processes on
127.0.0.1. Replay and backtest give exactly the report of the single-process run; the policy is
compiled once per worker (a worker plugin), the rows travel in blocks."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_harness import free_port

from regua.cli import main
from regua.engine import compile_file
from regua.engine.connectors import ConnectorError, Connectors, Fixture
from regua.engine.recorded import encode_answers
from regua.lab import distributed, parallel
from regua.lab.backtest import Backtester
from regua.lab.dataset import read_rows
from regua.lab.replay import Replayer

distributed_ = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"
CANDIDATE = ROOT / "examples" / "credito_b2b_candidato.regua"
HISTORY = ROOT / "examples" / "historico_b2b.csv"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.local_cluster(2)
    with distributed_.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert all(address.startswith("tcp://127.0.0.1:") for address in client.scheduler_info()["workers"])
        yield client
    cluster.close()


def _decision_log(n: int) -> list[dict]:
    """Records as the server stores them: the champion's decisions on the shipped history, with
    the answers their lookups got (the customer lookup failed: a recorded failure)."""
    champion = compile_file(CHAMPION)
    known = {f.name for f in champion.meta.input_type.fields}
    records = []
    with HISTORY.open(encoding="utf-8") as source:
        for i, row in zip(range(n), csv.DictReader(source)):
            order = {k: v for k, v in row.items() if k in known and v != ""}
            connectors = Connectors({"bureau.serasa": Fixture(json.loads(row["bureau.serasa"])),
                                     "portfolio.customer": Fixture(failure=ConnectorError("TIMEOUT"))})
            day = dt.date.fromisoformat(row["as_of"])
            decision = champion.evaluate(order, connectors=connectors, as_of=day)
            records.append({"id": f"01J{i:023d}", "as_of": day.isoformat(), "outcome": decision.outcome,
                            "body": json.dumps(decision.to_dict()), "input": json.dumps(order),
                            "connector_answers": encode_answers(decision.connector_calls)})
    return records


def test_a_replay_on_the_cluster_equals_the_single_process_run(client):
    records = _decision_log(1500)
    sources = [(CANDIDATE.read_text(encoding="utf-8"), str(CANDIDATE))]
    options = {"by": ("uf",), "keep": 25}
    serial = parallel.run(Replayer, sources, records, options).to_dict(25)
    seen: list[int] = []
    on_cluster = distributed.run(Replayer, sources, iter(records), options, client=client, chunk_size=200,
                                 on_partial=lambda partial: seen.append(partial.total)).to_dict(25)
    assert on_cluster == serial
    assert serial["changed"] > 25 and serial["replayed"] == 1500
    assert seen == [200] * 7 + [100]  # blocks merged in order, each a partial report
    # the policy was compiled once in each worker, by the plugin: tasks carry only its key
    key = distributed.job_key(Replayer, sources, options)
    counts = client.run(lambda: sorted(distributed._JOBS))
    assert len(counts) == 2 and all(key in keys for keys in counts.values())


def test_a_backtest_on_the_cluster_equals_the_single_process_run(client):
    sources = [(CANDIDATE.read_text(encoding="utf-8"), str(CANDIDATE)), (CHAMPION.read_text(encoding="utf-8"),
                                                                       str(CHAMPION))]
    options = {"label": "inadimplente", "amount": "valor_pedido", "by": ("setor",), "as_of": None}
    serial = parallel.run(Backtester, sources, read_rows(HISTORY), options).to_dict()
    on_cluster = distributed.run(Backtester, sources, read_rows(HISTORY), options, client=client,
                                 chunk_size=250).to_dict()
    assert on_cluster == serial and serial["evaluated"] == 3000


def test_the_command_line_starts_a_local_cluster(tmp_path):
    args = ["backtest", str(CANDIDATE), "--against", str(CHAMPION), "--data", str(HISTORY), "--label", "inadimplente",
            "--json", "-"]
    single = json.loads(CliRunner().invoke(main, args, catch_exceptions=False).output)
    result = CliRunner().invoke(main, [*args, "--scheduler", "local", "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    on_cluster = json.loads(result.output)
    assert {k: v for k, v in on_cluster.items() if k != "seconds"} == {k: v for k, v in single.items() if k != "seconds"}


def test_an_unreachable_scheduler_is_a_usage_error():
    result = CliRunner().invoke(main, ["backtest", str(CHAMPION), "--data", str(HISTORY),
                                       "--scheduler", f"tcp://127.0.0.1:{free_port()}"])
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output


def test_replay_over_the_command_line_on_a_local_cluster_reads_partitions(tmp_path):
    """`regua replay --scheduler local`: the workers read their id ranges from the store
    themselves; the report equals the single-process one, window included."""
    from regua.server import replay_source
    from regua.server.store import Store

    db = tmp_path / "regua.db"
    Store(str(db)).close()
    records = _decision_log(900)
    with sqlite3.connect(db) as conn:
        conn.executemany("insert into decisions (id, policy, version, revision, outcome, body, input, connector_answers)"
                         " values (?, 'credito_b2b', '2026.11.1', 1, ?, ?, ?, ?)",
                         [(_id(r["as_of"], i), r["outcome"], r["body"], r["input"], r["connector_answers"])
                          for i, r in enumerate(records)])
    window = replay_source.Window("credito_b2b", dt.date(2025, 3, 1), dt.date(2025, 8, 31))
    parts = list(replay_source.partitions(str(db), window, 100))
    inside = replay_source.count(str(db), window)[0]
    assert sum(len(part()) for part in parts) == inside and len(parts) == -(-inside // 100)
    args = ["replay", str(CANDIDATE), "--db", str(db), "--from", "2025-03-01", "--to", "2025-08-31", "--by", "uf",
            "--json", "-"]
    single = json.loads(CliRunner().invoke(main, args, catch_exceptions=False).output)
    result = CliRunner().invoke(main, [*args, "--scheduler", "local", "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    on_cluster = json.loads(result.output)
    assert single["replayed"] == inside and single["changed"] > 0
    assert {k: v for k, v in on_cluster.items() if k != "seconds"} == {k: v for k, v in single.items() if k != "seconds"}


def _id(as_of: str, counter: int) -> str:
    from regua.server.ids import id_floor

    day = dt.datetime.combine(dt.date.fromisoformat(as_of), dt.time(12), dt.timezone.utc)
    floor = id_floor(day)
    return floor[:16] + f"{counter:010d}"  # the time part, then a counter (digits are Crockford too)


def _store_with(location: str, records: list[dict]) -> None:
    """The decisions of `records` in a server store (SQLite file or PostgreSQL), as the server writes them."""
    from regua.server.store import open_store

    store = open_store(location)
    store.close()
    rows = [(_id(r["as_of"], i), r["outcome"], r["body"], r["input"], r["connector_answers"])
            for i, r in enumerate(records)]
    sql = ("insert into decisions (id, policy, version, revision, outcome, body, input, connector_answers)"
           " values (?, 'credito_b2b', '2026.11.1', 1, ?, ?, ?, ?)")
    if "://" in location:
        from regua import postgres

        with postgres.connect(location) as conn:
            conn.cursor().executemany(sql.replace("?", "%s"), rows)
    else:
        with sqlite3.connect(location) as conn:
            conn.executemany(sql, rows)


def _never(*_args):
    raise AssertionError("the driver read the rows: the workers should have")
    yield


def test_workers_read_their_own_partitions_on_either_backend(client, store_location):
    """SQLite or PostgreSQL: each worker reads its id ranges (or a sample's ids) from the store;
    the driver reads no row, and the report equals the single-process one."""
    import functools

    from regua.server import replay_source

    _store_with(store_location, _decision_log(700))
    window = replay_source.Window("credito_b2b")
    sources = [(CANDIDATE.read_text(encoding="utf-8"), str(CANDIDATE))]
    options = {"by": ("uf", "bureau.serasa.score.value:100"), "keep": 10}
    probe = (functools.partial(replay_source.probe, store_location, window), replay_source.count(store_location, window))
    for sample in (None, 150):
        serial = parallel.run(Replayer, sources, replay_source.records(store_location, window, sample), options)
        parts = replay_source.partitions(store_location, window, 100) if sample is None else \
            replay_source.sample_partitions(store_location, window, sample, 16, 40)
        sizes: list[int] = []
        on_cluster = distributed.run(Replayer, sources, _never(), options, client=client, partitions=parts,
                                     probe=probe, on_partial=lambda partial, sizes=sizes: sizes.append(partial.total))
        assert on_cluster.to_dict() == serial.to_dict() and serial.total == (sample or 700)
        assert sizes == ([100] * 7 if sample is None else [40, 40, 40, 30])


def test_workers_that_cannot_see_the_store_get_the_rows(client, tmp_path):
    """A store the workers do not see (a remote cluster, a SQLite file on the driver's disk):
    the probe says so and the driver ships the rows in blocks; a worker failing on its partition
    anyway (joined after the probe) is a clear ClusterError."""
    import functools

    from regua.server import replay_source

    db = str(tmp_path / "regua.db")
    _store_with(db, _decision_log(300))
    window = replay_source.Window("credito_b2b")
    sources = [(CANDIDATE.read_text(encoding="utf-8"), str(CANDIDATE))]
    serial = parallel.run(Replayer, sources, replay_source.records(db, window), {})
    elsewhere = str(tmp_path / "not-on-the-workers.db")  # what a worker elsewhere finds at the driver's path
    blind = (functools.partial(replay_source.probe, elsewhere, window), replay_source.count(db, window))
    assert set(client.run(blind[0]).values()) == {"FileNotFoundError"}
    shipped = distributed.run(Replayer, sources, replay_source.records(db, window), {}, client=client,
                              partitions=replay_source.partitions(elsewhere, window, 100), probe=blind)
    assert shipped.to_dict() == serial.to_dict()
    seeing = (functools.partial(replay_source.probe, db, window), replay_source.count(db, window))
    lost = [replay_source.Partition(elsewhere, "credito_b2b", "0", "Z")]
    with pytest.raises(distributed.ClusterError, match="could not read its partition"):
        distributed.run(Replayer, sources, None, {}, client=client, partitions=lost, probe=seeing)
