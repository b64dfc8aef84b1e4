"""Decision and event sinks: every plugin hears about recorded decisions; a broken one is isolated."""

from plugins.hookspecs import hookimpl
from plugins.registry import Registry


class Collecting:
    __name__ = "collecting_sink"

    def __init__(self):
        self.decisions, self.events = [], []

    @hookimpl
    def regua_decision_recorded(self, decision, record):
        self.decisions.append((decision, record))

    @hookimpl
    def regua_event_recorded(self, event):
        self.events.append(event)


class Broken:
    __name__ = "broken_sink"

    @hookimpl
    def regua_decision_recorded(self, record):
        raise RuntimeError("disk full")


def test_sinks_receive_decisions_and_events_and_a_broken_sink_is_isolated():
    sink = Collecting()
    registry = Registry.load(extra=[Broken(), sink])
    registry.decision_recorded("the decision", {"id": "d-1", "outcome": "approve"})
    registry.event_recorded({"kind": "contact", "id": "e-1"})
    assert sink.decisions == [("the decision", {"id": "d-1", "outcome": "approve"})]
    assert sink.events == [{"kind": "contact", "id": "e-1"}]
    assert registry.sink_errors == [("broken_sink", "regua_decision_recorded", "RuntimeError")]


def test_denied_sink_is_not_called():
    from plugins.manager import PluginSettings

    sink = Collecting()
    registry = Registry.load(PluginSettings(deny=["collecting_sink"]), extra=[sink])
    registry.decision_recorded("d", {"id": "d-2"})
    assert sink.decisions == []


def test_allow_and_deny_lists_come_from_the_environment():
    from plugins.manager import PluginSettings, get_plugin_manager

    settings = PluginSettings.from_env({"REGUA_PLUGINS_DENY": "notifications, negativation"})
    assert settings.deny == ["notifications", "negativation"] and settings.allow is None
    pm = get_plugin_manager(settings)
    assert not pm.has_plugin("notifications") and pm.has_plugin("sandbox_bureau")
    only = get_plugin_manager(PluginSettings.from_env({"REGUA_PLUGINS_ALLOW": "sandbox_bureau"}))
    assert sorted(only.infos) == ["sandbox_bureau"]
