"""Decision and event sinks: every plugin hears about recorded decisions; a broken one is isolated."""

from regua.plugins.hookspecs import hookimpl
from regua.plugins.registry import Registry


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
    from regua.plugins.manager import PluginSettings

    sink = Collecting()
    registry = Registry.load(PluginSettings(deny=["collecting_sink"]), extra=[sink])
    registry.decision_recorded("d", {"id": "d-2"})
    assert sink.decisions == []


def test_allow_and_deny_lists_come_from_the_environment():
    from regua.plugins.manager import PluginSettings, get_plugin_manager

    settings = PluginSettings.from_env({"REGUA_PLUGINS_DENY": "notifications, negativation"})
    assert settings.deny == ["notifications", "negativation"] and settings.allow is None
    pm = get_plugin_manager(settings)
    assert not pm.has_plugin("notifications") and pm.has_plugin("sandbox_bureau")
    only = get_plugin_manager(PluginSettings.from_env({"REGUA_PLUGINS_ALLOW": "sandbox_bureau"}))
    assert sorted(only.infos) == ["sandbox_bureau"]


def test_two_extra_plugins_with_one_name_are_refused():
    import pytest

    with pytest.raises(ValueError, match="two plugins are called 'collecting_sink'"):
        Registry.load(extra=[Collecting(), Collecting()])


def test_retries_stop_when_the_overall_budget_would_be_exceeded():
    from regua.plugins.connectors import BureauConnector, TransientError
    from regua.plugins.runtime import Resilient

    class Flaky(BureauConnector):
        name = "flaky"
        timeout, retries, backoff, budget = 1.0, 5, 0.5, 2.0

        def fetch(self, document):
            raise TransientError("UNAVAILABLE")

    delays = []
    resilient = Resilient(Flaky(), Flaky().fetch, sleep=delays.append)
    import pytest

    with pytest.raises(TransientError):
        resilient("x")
    # attempt 1, sleep 0.5, attempt 2 (0.5 + 1.0 would pass 2.0 with the next 1.0 s delay): stop
    assert resilient.attempts == 2 and delays == [0.5]
