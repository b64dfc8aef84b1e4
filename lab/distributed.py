"""Replay and backtest on a Dask cluster (`--scheduler tcp://HOST:8786`, or `--scheduler local`
for a `LocalCluster` of `--workers N` processes on this machine, listening on 127.0.0.1 only).

- The policy travels once per worker: a worker plugin carries its source and a cache key, and
  each worker compiles it when the plugin is set up (also on workers that join later); tasks
  name the key, never the policy.
- Rows travel in partitions. Where the workers can read the rows themselves (a replay's store:
  the same SQLite file, or the PostgreSQL server, checked on every worker first), a partition is
  a small loader (an id range) and the driver ships no rows at all; otherwise blocks of records
  (or dataset rows) encoded with msgpack (msgspec). At most a few partitions per worker are in
  flight, so the driver never holds the whole input.
- Each task returns a partial report; the driver merges them in block order, which makes the
  result exactly the single-process one.

Needs the `lab` extra (dask[distributed]). Workers of a remote cluster need Régua installed (the
same version) and, for a backtest, nothing else: the rows are sent to them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Iterable

import msgspec

from .common import compile_source
from .parallel import chunks

#: cache key -> the job (the compiled policy with its options) in this worker process.
_JOBS: dict = {}
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


QUIET_WORKERS = {"distributed.worker.profile.enabled": False,
                 "distributed.admin.system-monitor.gil.enabled": False}


class ClusterError(Exception):
    """The cluster cannot be used (dask not installed, scheduler unreachable)."""


def job_key(make: Callable, sources: list[tuple[str, str]], options: dict) -> str:
    """What identifies a compiled job: the kind, the policies' sources and the options."""
    text = json.dumps([f"{make.__module__}.{make.__qualname__}", sources, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plugin_class():
    from distributed import WorkerPlugin

    class PolicyPlugin(WorkerPlugin):
        """Compiles the job's policies once in each worker (when the plugin reaches it)."""

        def __init__(self, key: str, make: Callable, sources: list[tuple[str, str]], options: dict):
            self.key, self.make, self.sources, self.options = key, make, sources, options

        def setup(self, worker) -> None:
            # This class travels by value (it is made in a function, so that this module imports
            # without dask): reach the module's own registry, not a copy pickled along with it.
            from regua.lab import distributed

            distributed.install(self.key, self.make, self.sources, self.options)

    return PolicyPlugin


def install(key: str, make: Callable, sources: list[tuple[str, str]], options: dict) -> None:
    """Compile the job in this worker process, once per key."""
    if key not in _JOBS:
        _JOBS[key] = make(*[compile_source(source, file) for source, file in sources], **options)


def _run_block(key: str, block: bytes):
    return _JOBS[key].run(_decode(block))


def _run_partition(key: str, loader: Callable):
    return _JOBS[key].run(loader())


def _all_see(client, function: Callable, expected) -> bool:
    answers = client.run(function, on_error="return")
    return bool(answers) and all(answer == expected for answer in answers.values())


def local_cluster(workers: int, cluster_class=None):
    """A LocalCluster of `workers` processes listening on 127.0.0.1 only: the scheduler, the
    workers and their small HTTP servers (health, metrics; no dashboard) bind to the loopback."""
    import dask

    if cluster_class is None:
        from distributed import LocalCluster as cluster_class
    # No statistical profiler (it samples the task thread's stack every 10 ms) nor GIL monitor:
    # both hold the GIL the evaluation needs. The nannies pass this configuration to their workers.
    with dask.config.set(QUIET_WORKERS):
        return cluster_class(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=None, worker_dashboard_address="127.0.0.1:0",
                             scheduler_kwargs={"dashboard_address": "127.0.0.1:0", "dashboard": False},
                             silence_logs=40)


def connect(scheduler: str, workers: int | None):
    """(client, cluster or None): `local` starts a LocalCluster of `workers` processes (one thread
    each: evaluation holds the GIL) on 127.0.0.1; anything else is a scheduler's address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("Dask is not installed: pip install 'regua[lab]'") from None
    if scheduler == "local":
        cluster = local_cluster(workers or 2, LocalCluster)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="10s"), None
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def run(make: Callable, sources: list[tuple[str, str]], items: Iterable | None, options: dict | None = None,
        scheduler: str = "local", workers: int | None = None, chunk_size: int = 2000,
        prepared: list | None = None, on_partial: Callable | None = None, client=None,
        partitions: Iterable[Callable] | None = None, probe: tuple[Callable, Any] | None = None):
    """Like regua.lab.parallel.run, on a Dask cluster (an existing `client`, else `scheduler`).
    `partitions` instead of `items`: picklable loaders each worker calls to read its own rows
    (e.g. id ranges of a store it can open), so the driver ships no rows at all.
    `probe` = (function, expected): partitions are used only when `function()` run on every
    worker returns `expected` (each sees the store the driver sees); otherwise the driver reads
    `items` and ships them in blocks."""
    options = options or {}
    job = make(*(prepared or [compile_source(source, file) for source, file in sources]), **options)
    report = job.empty()
    own = client is None
    cluster = None
    if own:
        client, cluster = connect(scheduler, workers)
    try:
        key = job_key(make, sources, options)
        client.register_plugin(_plugin_class()(key, make, sources, options), name=f"regua-lab-{key[:16]}")
        in_flight = max(2, 3 * len(client.scheduler_info().get("workers", {})) or 4)
        pending: list = []

        def merge(future) -> None:
            try:
                partial = future.result()
            except Exception as error:  # named below; the job itself never raises (bad rows are counted)
                if partitions is None:
                    raise
                # e.g. a worker that joined after the probe and cannot open the store
                raise ClusterError(f"a worker could not read its partition of the rows: {type(error).__name__}: "
                                   f"{str(error)[:200]}") from None
            future.release()
            if on_partial is not None:
                on_partial(partial)
            report.merge(partial)

        if partitions is not None and probe is not None and not _all_see(client, *probe):
            partitions = None
        if partitions is None and items is None:
            raise ClusterError("the cluster's workers cannot read the rows themselves and none were given")
        tasks = ((_run_partition, loader) for loader in partitions) if partitions is not None else \
            ((_run_block, _encode(chunk)) for chunk in chunks(items, chunk_size))
        for function, argument in tasks:
            pending.append(client.submit(function, key, argument, pure=False))
            if len(pending) >= in_flight:
                merge(pending.pop(0))
        for future in pending:
            merge(future)
        return report
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
