"""The services one server process runs, built once and shared by every request."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from regua import postgres
from regua.dsl import limits
from regua.engine import brazil
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry
from regua.portfolio.monitoring.account import AccountLookup

from .auth import KeyRing
from .collection import CollectionService, plugin_config
from .config import Settings
from .decision_log import DecisionLog
from .decision_process import DecisionWriterProcess
from .evaluator import Evaluator
from .experiments import ExperimentService
from .metrics import Metrics
from .monitoring import MonitoringService
from .policies import FolderWatcher, PolicyService
from .replays import ReplayJobs
from .retention import purge, retention_cutoff
from .store import Store, open_store

log = logging.getLogger("regua.server")
RETENTION_INTERVAL_S = 6 * 3600


@dataclass
class Services:
    settings: Settings
    store: Store  # or a PostgresStore (store.url): the same interface
    registry: Registry
    policies: PolicyService
    evaluator: Evaluator
    decision_log: DecisionLog
    metrics: Metrics
    keyring: KeyRing
    collection: CollectionService
    monitoring: MonitoringService
    replays: ReplayJobs
    watcher: FolderWatcher | None = None
    account: AccountLookup | None = None  # portfolio.customer: closed with the server (PostgreSQL: its listener)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_background(self) -> None:
        if self.watcher is not None:
            self.watcher.start()
        threading.Thread(target=self._sync_loop, name="regua-policy-sync", daemon=True).start()
        if self.settings.collection.enabled:
            self.collection.start_scheduler()
        self.monitoring.start_poller()
        if self.settings.store.retention_days > 0 or self.settings.store.replay_retention_days > 0:
            threading.Thread(target=self._retention_loop, name="regua-retention", daemon=True).start()

    def _retention_loop(self) -> None:
        """Apply store.retention_days (and store.replay_retention_days) now and every 6 hours
        (every worker may: a purge is idempotent)."""
        while True:
            self.apply_retention(brazil.today())
            if self._stop.wait(RETENTION_INTERVAL_S):
                return

    def apply_retention(self, today) -> None:
        store = self.settings.store
        rounds = [(retention_cutoff(today, store.retention_days), "store.retention_days", False),
                  (retention_cutoff(today, store.replay_retention_days), "store.replay_retention_days", True)]
        for cutoff, name, replays_only in rounds:
            if cutoff is None:
                continue
            try:
                report = purge(store.location, cutoff, name, audit_empty=False, replays_only=replays_only)
                if report.decisions or report.cache_entries or report.replays:
                    log.info("retention: %d decision(s) anonymised, %d cached answer(s) and %d replay job(s) "
                             "deleted (before %s)", report.decisions, report.cache_entries, report.replays,
                             report.before)
            except Exception as error:  # noqa: BLE001 — the next round tries again
                log.error("retention purge failed: %s", type(error).__name__)

    def _sync_loop(self) -> None:
        """Pick up versions other workers and replicas published (and rollbacks): at once when the
        store notifies (PostgreSQL), and by polling the activation counter every sync_interval."""
        interval = self.settings.policies.sync_interval
        db_errors = 0
        while not self._stop.is_set():
            self.store.wait_for_activation(interval, self._stop)
            if self._stop.is_set():
                self.store.close()  # this thread's connections (the PostgreSQL listener)
                return
            try:
                self.policies.refresh()
                self.metrics.decision_backlog.set(self.decision_log.backlog)
            except Exception as error:  # noqa: BLE001 — keep polling; report once in a while
                db_errors += 1
                if db_errors % 30 == 1:
                    log.error("policy sync failed: %s", type(error).__name__)

    def stop(self) -> None:
        self._stop.set()
        self.replays.stop()
        self.collection.stop()
        self.monitoring.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.evaluator.experiments is not None:
            self.evaluator.experiments.worker.close()
        self.decision_log.close()
        if self.account is not None:
            self.account.close()


def build_services(settings: Settings, registry: Registry | None = None, today=None) -> Services:
    store = open_store(settings.store.location)
    plugin_settings = None
    if registry is None:
        plugin_settings = PluginSettings(allow=settings.plugins.allow, deny=list(settings.plugins.deny),
                                         config=plugin_config(settings))
        cache = None
        if postgres.is_url(settings.store.url):
            from .connector_cache import PostgresBureauCache

            cache = PostgresBureauCache(settings.store.url)
        registry = Registry.load(plugin_settings, cache_path=settings.store.path, cache=cache,
                                 sandbox_aliases=settings.sandbox)
    # Size limits of policy text apply to every parse in this process: files, publishes, rollbacks.
    limits.configure(settings.policies.max_source_chars, settings.policies.max_literal_chars)
    env = registry.environment()
    connectors = registry.engine_connectors()
    # The order gate of credit policies reads the customer's current limit from the portfolio.
    account = AccountLookup(settings.store.location, today or brazil.PerMinute(brazil.today))
    connectors.register("portfolio.customer", account)
    # A policy whose lookups all answer without network I/O is evaluated on the event loop.
    policies = PolicyService(store, env, connectors.is_inline, settings.policies.folder,
                             settings.policies.cache_dir or None)
    policies.start()
    metrics = Metrics()
    sinks = registry.decision_recorded if registry.pm.hook.regua_decision_recorded.get_hookimpls() else None
    location = settings.store.location
    # The inserts go to a child process (server.decision_process): they cost a busy event loop
    # ~20 % of its requests when a thread of this process makes them. (The store is always a file
    # or a PostgreSQL URL: Store refuses an in-memory database.)
    writer = DecisionWriterProcess(location) if settings.store.writer_process else None
    decision_log = DecisionLog(store, settings.store.flush_interval_ms, settings.store.flush_max, sinks, writer)
    evaluator_kwargs = {"today": today} if today is not None else {}
    # Shadows in a child process when it can compile them as this process does: the plugins come
    # from the settings (a registry handed in, as tests do, may hold plugins it cannot rebuild).
    shadow_process = (settings.store.location, plugin_settings, settings.sandbox) \
        if settings.server.shadow_process and plugin_settings is not None else None
    experiments = ExperimentService(store, policies, metrics=metrics.shadow, shadow_process=shadow_process)
    experiments.refresh(force=True)
    evaluator = Evaluator(policies, connectors, store, decision_log, metrics,
                          settings.store.durability, connector_budget=settings.server.connector_budget,
                          evaluation_budget=settings.server.evaluation_budget,
                          max_list_items=settings.server.max_list_items, experiments=experiments, **evaluator_kwargs)
    watcher = FolderWatcher(policies, on_reload=metrics.policy_reloads) if settings.policies.watch else None
    collection = CollectionService(settings, registry,
                                   lambda: {name: active.prepared for name, active in policies.active.items()})
    monitoring_connectors = connectors
    if postgres.is_url(settings.store.location) and account.cache is not None:
        # Monitoring changes limits and reads them back alert after alert: it reads the database,
        # not answers that learn of its own writes only when their NOTIFY comes back.
        monitoring_connectors = registry.engine_connectors()
        monitoring_connectors.register("portfolio.customer", AccountLookup(settings.store.location, account.today,
                                                                           cache=False))
    monitoring = MonitoringService(settings, registry, policies, monitoring_connectors, **evaluator_kwargs)
    return Services(settings, store, registry, policies, evaluator, decision_log, metrics,
                    KeyRing.from_settings(settings), collection, monitoring, ReplayJobs(store, policies), watcher,
                    account)
