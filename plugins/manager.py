"""The plugin manager: built-in plugins, then installed ones (entry-point group `regua`).

Built-ins are ordinary plugins registered through the same hooks; an allow-list and a
deny-list (by plugin name) decide what gets loaded. A plugin that fails to import is
reported by `regua plugins`, never a crash.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "regua"
# module path -> plugin name
DEFAULT_PLUGINS = {
    "regua.plugins.builtin.sandbox_bureau": "sandbox_bureau",
    "regua.plugins.builtin.http_bureau": "http_bureau",
    "regua.plugins.builtin.notifications": "notifications",
    "regua.plugins.builtin.negativation": "negativation",
    "regua.plugins.builtin.monitoring_source": "monitoring_sources",
}
# plugin name -> the hooks it implements (tests/test_plugins.py checks them against the modules):
# a manager asked for some hooks only (`hooks=`) skips importing the built-ins that implement none.
BUILTIN_HOOKS = {
    "sandbox_bureau": ("regua_bureau_connectors",),
    "http_bureau": ("regua_bureau_connectors",),
    "notifications": ("regua_notification_channels",),
    "negativation": ("regua_negativation_services",),
    "monitoring_sources": ("regua_monitoring_sources",),
}
#: What compiling and evaluating a policy needs from the plugins: bureau connectors and functions.
POLICY_HOOKS = ("regua_bureau_connectors", "regua_functions")


@dataclass
class PluginSettings:
    allow: list[str] | None = None  # None: everything not denied
    deny: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # per-plugin settings, by plugin name

    def allowed(self, name: str) -> bool:
        return name not in self.deny and (self.allow is None or name in self.allow)

    @classmethod
    def from_env(cls, environ=None) -> "PluginSettings":
        """REGUA_PLUGINS_ALLOW / REGUA_PLUGINS_DENY: comma-separated plugin names."""
        import os

        environ = os.environ if environ is None else environ

        def names(key):
            raw = environ.get(key)
            return None if raw is None else [n.strip() for n in raw.split(",") if n.strip()]

        return cls(allow=names("REGUA_PLUGINS_ALLOW"), deny=names("REGUA_PLUGINS_DENY") or [])


@dataclass
class PluginInfo:
    name: str
    source: str  # "builtin" or the distribution that provides it
    version: str
    module: str
    hooks: list[str]
    error: str | None = None


class PluginManager(pluggy.PluginManager):
    def __init__(self, settings: PluginSettings):
        super().__init__("regua")
        self.settings = settings
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def hook_names(self, plugin) -> list[str]:
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or [])


def get_plugin_manager(settings: PluginSettings | None = None, extra: list | None = None,
                       hooks: tuple[str, ...] | None = None) -> PluginManager:
    """Built-ins, installed plugins and `extra` plugin objects (tests, embedding), as settings allow.

    `hooks`: only these hooks will be called (e.g. POLICY_HOOKS for `regua eval`), so the built-ins
    implementing none of them are not even imported. Installed plugins are always loaded: what
    they implement is only known once they are."""
    from regua import __version__  # the built-ins' version (a metadata lookup costs ~5 ms each)

    settings = settings or PluginSettings()
    pm = PluginManager(settings)
    for module_name, name in DEFAULT_PLUGINS.items():
        if not settings.allowed(name) or (hooks is not None and not set(BUILTIN_HOOKS[name]) & set(hooks)):
            continue
        module = importlib.import_module(module_name)
        pm.register(module, name=name)
        pm.infos[name] = PluginInfo(name, "builtin", __version__, module_name, pm.hook_names(module))
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if not settings.allowed(entry_point.name) or pm.has_plugin(entry_point.name):
            continue
        dist = entry_point.dist
        source = dist.metadata["Name"] if dist else "unknown"
        version = dist.version if dist else "?"
        try:
            plugin = entry_point.load()
        except Exception as error:  # noqa: BLE001 — a broken plugin is reported, not fatal
            pm.infos[entry_point.name] = PluginInfo(entry_point.name, source, version, entry_point.value, [],
                                                    f"{type(error).__name__}: {error}")
            continue
        pm.register(plugin, name=entry_point.name)
        pm.infos[entry_point.name] = PluginInfo(entry_point.name, source, version, entry_point.value,
                                                pm.hook_names(plugin))
    for plugin in extra or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.is_registered(plugin):  # already loaded through its entry point
            continue
        if pm.has_plugin(name):
            raise ValueError(f"two plugins are called '{name}' (give extra plugin objects a unique __name__)")
        if settings.allowed(name):
            pm.register(plugin, name=name)
            pm.infos[name] = PluginInfo(name, "extra", "?", getattr(plugin, "__module__", name), pm.hook_names(plugin))
    return pm
