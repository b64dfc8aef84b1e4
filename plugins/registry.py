"""What the loaded plugins provide, ready for the engine: connectors, channels, functions.

    registry = Registry.load(settings, cache_path="regua.db")
    env = registry.environment()              # for compiling policies (checker sees plugin types)
    connectors = registry.engine_connectors() # for evaluating them (resilient, cached)
"""

from __future__ import annotations

import msgspec

from regua.dsl.environment import ConnectorSpec, Environment
from regua.engine.builtins import BUREAU_REPORT, DOCUMENT, default_environment
from regua.engine.connectors import Answer, Connectors

from .cache import BureauCache
from .connectors import BureauConnector, MonitoringSource, NegativationService, NotificationChannel
from .manager import POLICY_HOOKS, PluginManager, PluginSettings, get_plugin_manager
from .runtime import Resilient


class RegistryError(Exception):
    pass


class Registry:
    def __init__(self, pm: PluginManager, cache: BureauCache | None = None, sandbox_aliases: bool = False,
                 hooks: tuple[str, ...] | None = None):
        """`hooks`: call only these provider hooks (the others' dictionaries stay empty)."""
        self.pm = pm
        self.cache = cache
        config = pm.settings.config
        self.bureaus: dict[str, BureauConnector] = {}
        self.channels: dict[str, NotificationChannel] = {}
        self.negativators: dict[str, NegativationService] = {}
        self.monitoring_sources: dict[str, MonitoringSource] = {}

        def provided(hook: str) -> list:
            return [] if hooks is not None and hook not in hooks else getattr(pm.hook, hook)(config=config)

        for items in provided("regua_bureau_connectors"):
            for connector in items or []:
                self._add(self.bureaus, connector, "bureau")
        for items in provided("regua_notification_channels"):
            for channel in items or []:
                self._add(self.channels, channel, "notification channel")
        for items in provided("regua_negativation_services"):
            for service in items or []:
                self._add(self.negativators, service, "negativation service")
        for items in provided("regua_monitoring_sources"):
            for source in items or []:
                self._add(self.monitoring_sources, source, "monitoring source")
        self.functions = [spec for items in provided("regua_functions") for spec in items or []]
        # Offline development: every known bureau name is answered by the sandbox, loudly.
        self.sandbox_aliases = sandbox_aliases
        self._resilient: dict[str, Resilient] = {}
        self.sink_errors: list[tuple[str, str, str]] = []

    @classmethod
    def load(cls, settings: PluginSettings | None = None, cache_path: str | None = None, extra: list | None = None,
             sandbox_aliases: bool = False, cache=None, hooks: tuple[str, ...] | None = None) -> "Registry":
        """`cache`: an answer cache with BureauCache's get/put (the server's PostgreSQL one); else a
        BureauCache in the SQLite file `cache_path`, if given. `hooks`: only what these provider
        hooks give (POLICY_HOOKS: what compiling and evaluating policies needs) — quicker, as the
        other built-ins are neither imported nor set up."""
        if cache is None and cache_path:
            cache = BureauCache(cache_path)
        return cls(get_plugin_manager(settings, extra, hooks), cache, sandbox_aliases, hooks)

    @classmethod
    def for_policies(cls, settings: PluginSettings | None = None, sandbox_aliases: bool = False) -> "Registry":
        """Bureaus and functions only: enough to compile, check, test and evaluate policies."""
        return cls.load(settings, sandbox_aliases=sandbox_aliases, hooks=POLICY_HOOKS)

    @staticmethod
    def _add(target: dict, item, what: str) -> None:
        name = getattr(item, "name", "")
        if not name:
            raise RegistryError(f"a {what} without a name: {item!r}")
        if name in target:
            raise RegistryError(f"two {what}s are called '{name}'")
        target[name] = item

    # ---- for the checker and compiler ----
    def environment(self) -> Environment:
        env = default_environment()
        for name in self.bureaus:
            env.add_connector(ConnectorSpec("bureau", name, (DOCUMENT,), BUREAU_REPORT, f"credit report from {name}"))
        for spec in self.functions:
            if spec.name in env.functions:
                raise RegistryError(f"function '{spec.name}' is defined twice")
            env.add_function(spec)
        return env

    # ---- for evaluation ----
    def bureau_call(self, name: str):
        """The engine-facing callable for bureau `name`: cached, with deadline, retries, breaker."""
        connector = self.bureaus.get(name)
        if connector is None and self.sandbox_aliases:
            connector = self.bureaus.get("sandbox")
        if connector is None:
            return None
        resilient = self._resilient.get(connector.name)
        if resilient is None:
            resilient = self._resilient[connector.name] = Resilient(connector, connector.fetch)
        # A connector whose answers may not be reused (ttl 0, e.g. the sandbox) never touches the cache.
        cache = self.cache if connector.ttl > 0 else None
        qualified = f"bureau.{connector.name}"

        def fetch(document: str):
            if cache is not None:
                hit = cache.get(qualified, document)
                if hit is not None:
                    return Answer(hit, cached=True, cost="0")
            report = resilient(document)
            answer = msgspec.to_builtins(report)
            if cache is not None:
                cache.put(qualified, document, answer, connector.ttl, connector.cost)
            return Answer(answer, cached=False, cost=connector.cost)

        return fetch

    def is_inline(self, qualified_name: str) -> bool:
        """True when `bureau.x` is answered from memory (plugins.connectors.Connector.inline)."""
        kind, _, name = qualified_name.partition(".")
        connector = self.bureaus.get(name) if kind == "bureau" else None
        if connector is None and self.sandbox_aliases and kind == "bureau":
            connector = self.bureaus.get("sandbox")
        return bool(connector is not None and connector.inline)

    def engine_connectors(self) -> Connectors:
        connectors = Connectors()
        names = set(self.bureaus)
        if self.sandbox_aliases:
            names |= {spec.name for spec in default_environment().connectors.values()}
        for name in sorted(names):
            call = self.bureau_call(name)
            if call is not None:
                connectors.register(f"bureau.{name}", call, inline=self.is_inline(f"bureau.{name}"))
        return connectors

    # ---- sinks ----
    def decision_recorded(self, decision, record: dict) -> None:
        """Tell every plugin a decision was recorded. A failing sink is skipped, never fatal."""
        self._notify("regua_decision_recorded", decision=decision, record=record)

    def event_recorded(self, event: dict) -> None:
        """Tell every plugin a collection or monitoring event was recorded."""
        self._notify("regua_event_recorded", event=event)

    def _notify(self, hook_name: str, **kwargs) -> None:
        for implementation in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                implementation.function(**{k: v for k, v in kwargs.items() if k in implementation.argnames})
            except Exception as error:  # noqa: BLE001 — one broken sink must not lose the others
                self.sink_errors.append((implementation.plugin_name, hook_name, type(error).__name__))

    def breaker_states(self) -> dict[str, str]:
        return {name: r.breaker.state for name, r in self._resilient.items()}
