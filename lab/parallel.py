"""Spreading a replay or a backtest over worker processes (concurrent.futures).

Each worker compiles the policy once, from its source (sent once, in the pool's initializer: a
compiled policy holds code objects and is not sent between processes), then turns chunks of
records into partial reports; the parent merges them in chunk order, so the result is the one a
single process gives. On a cluster: regua.lab.distributed (Dask).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
from typing import Callable, Iterable, Iterator

from .common import compile_source

_WORKER: dict = {}


def _init(make: Callable, sources: list[tuple[str, str]], options: dict) -> None:
    _WORKER["job"] = make(*[compile_source(source, file) for source, file in sources], **options)


def _run(chunk: list):
    return _WORKER["job"].run(chunk)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def run(make: Callable, sources: list[tuple[str, str]], items: Iterable, options: dict | None = None,
        workers: int = 1, chunk_size: int = 500, prepared: list | None = None,
        on_partial: Callable | None = None):
    """`make(*policies, **options)` builds a job with `.run(chunk) -> report` and `.empty()`;
    reports have `.merge(other)`. With workers <= 1 everything runs here (with `prepared`
    policies when given, else compiled from `sources`). `on_partial(report)` sees each chunk's
    partial report, in chunk order, before it is merged (the CLI streams changed rows to CSV)."""
    options = options or {}

    def merge(report, partial):
        if on_partial is not None:
            on_partial(partial)
        return report.merge(partial)

    if workers <= 1:
        job = make(*(prepared or [compile_source(source, file) for source, file in sources]), **options)
        report = job.empty()
        for chunk in chunks(items, chunk_size):
            merge(report, job.run(chunk))
        return report
    job = make(*(prepared or [compile_source(source, file) for source, file in sources]), **options)
    report = job.empty()
    # spawn, not fork: the parent may hold threads (thread pools, a server in tests) a fork would copy mid-state.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                                initargs=(make, sources, options)) as pool:
        pending: list = []
        for chunk in chunks(items, chunk_size):
            pending.append(pool.submit(_run, chunk))
            if len(pending) >= workers * 4:  # bounded: a large log is never all in memory
                merge(report, pending.pop(0).result())
        for future in pending:
            merge(report, future.result())
    return report
