"""The backtest driver's memory does not grow with the rows (issue 16), shown structurally: the
readers hold one line or one bounded batch at a time, and the reports keep counts, never rows.
(The peak RSS at 100k and 1M rows is measured by benchmarks/bench_lab.py.)"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import tracemalloc
from pathlib import Path

import pytest

from regua.lab import dataset
from regua.lab.backtest import MAX_LISTED_ERRORS, Backtester
from regua.lab.dataset import read_rows
from regua.lab.parallel import run

ROOT = Path(__file__).resolve().parent.parent
CHAMPION = ROOT / "policies" / "credito_b2b.regua"
CANDIDATE = ROOT / "examples" / "credito_b2b_candidato.regua"
HISTORY = ROOT / "examples" / "historico_b2b.csv"


def _history() -> list[dict]:
    with HISTORY.open(encoding="utf-8") as source:
        return list(csv.DictReader(source))


def _held(value) -> int:
    """How many values a report holds: the entries of its dicts and lists, recursively."""
    if dataclasses.is_dataclass(value):
        return sum(_held(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return len(value) + sum(_held(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return len(value) + sum(_held(v) for v in value)
    return 0


def _rows(n: int) -> list[tuple[int, dict]]:
    """n dataset rows cycling over the history, every fourth one unreadable."""
    history = _history()
    rows = []
    for i in range(n):
        row = dict(history[i % len(history)])
        if i % 4 == 3:
            row["faturamento_anual"] = "muito"
        rows.append((i + 2, row))
    return rows


def test_the_merged_backtest_report_keeps_no_row_state():
    """Swap sets, bad rates, amounts and cuts are counts: a report of 3× the rows holds as many
    values (errors are listed up to MAX_LISTED_ERRORS, rows' decisions only per chunk)."""
    sources = [(CANDIDATE.read_text(), str(CANDIDATE)), (CHAMPION.read_text(), str(CHAMPION))]
    options = {"label": "inadimplente", "amount": "valor_pedido", "by": ("setor",), "as_of": None, "keep_rows": True}
    held, chunk_rows = {}, []
    for n in (1000, 3000):
        report = run(Backtester, sources, _rows(n), options, chunk_size=100,
                     on_partial=lambda partial: chunk_rows.append(len(partial.decisions)))
        assert report.rows == n and report.errors == n // 4
        assert len(report.error_list) == MAX_LISTED_ERRORS and report.decisions == []
        held[n] = _held(report)
    assert held[3000] == held[1000], held
    assert max(chunk_rows) <= 100 and sum(chunk_rows) == 750 + 2250  # each chunk's, written as they arrive


def test_csv_rows_are_read_one_line_at_a_time(tmp_path):
    """Reading a CSV (also as Excel pt-BR saves it: `;`, decimal commas, Windows-1252) or JSON
    Lines allocates what one line needs, not what the file holds."""
    history = _history()
    fields = list(history[0])
    rows = [dict(history[i % len(history)], setor="construção") for i in range(12_000)]
    plain, excel, lines = tmp_path / "h.csv", tmp_path / "excel.csv", tmp_path / "h.jsonl"
    with plain.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    with excel.open("w", encoding="cp1252", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields, delimiter=";")
        writer.writeheader()
        writer.writerows({k: v.replace(".", ",") if k == "valor_pedido" else v for k, v in r.items()} for r in rows)
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for path in (plain, excel, lines):
        assert path.stat().st_size > 3_000_000
        tracemalloc.start()
        try:
            reading = read_rows(path)
            next(reading)  # the encoding is told from the first megabyte, once
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            count = 1 + sum(1 for _ in reading)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == len(rows)
        assert peak - base < 100_000, (path.name, peak - base)  # a few lines' worth; the file is 30 times more


def _arrow_while_reading(path: Path, group_rows: int, batches: list) -> list[int]:
    """Bytes Arrow holds after each row group's worth of rows read_rows gave from `path`."""
    import pyarrow as pa

    arrow, in_order = [], 0
    for number, row in read_rows(path):
        in_order += row["cnpj"] == f"{number - 1:014d}"
        if number % group_rows == 0:
            arrow.append(pa.total_allocated_bytes())
    assert in_order == number == sum(batches)
    return arrow


def test_parquet_rows_are_read_in_bounded_batches(tmp_path, monkeypatch):
    """At most PARQUET_BATCH rows are decoded at a time, and Arrow's memory does not grow with
    the file: reading 24 row groups holds what reading 6 does (pyarrow's pre-buffering held every
    column chunk read, the whole file at once when it is small)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = random.Random(16)
    group_rows = 250
    batches: list[int] = []

    class Watched(pq.ParquetFile):
        def iter_batches(self, *args, **kwargs):
            for batch in super().iter_batches(*args, **kwargs):
                batches.append(batch.num_rows)
                yield batch

    peaks = {}
    for groups in (6, 24):
        n = groups * group_rows
        table = pa.table({"cnpj": [f"{i:014d}" for i in range(n)],
                          # about 1 kB that does not compress, like a bureau's answer a row
                          "bureau.serasa": [json.dumps({"id": rng.randbytes(500).hex()}) for _ in range(n)],
                          "inadimplente": [i % 9 == 0 for i in range(n)]})
        path = tmp_path / f"h{groups}.parquet"
        pq.write_table(table, path, row_group_size=group_rows)
        del table  # out of Arrow's memory pool, which is measured
        assert pq.ParquetFile(path).metadata.num_row_groups == groups
        batches.clear()
        with monkeypatch.context() as patch:
            patch.setattr(pq, "ParquetFile", Watched)
            patch.setattr(dataset, "PARQUET_BATCH", 100)
            arrow = _arrow_while_reading(path, group_rows, batches)
        assert sum(batches) == n and max(batches) <= 100
        peaks[groups] = max(arrow)
    assert peaks[24] < path.stat().st_size / 4, peaks  # never the file
    assert peaks[24] <= peaks[6] * 1.05, peaks
