"""Every hook Régua calls. Built-in connectors are plugins implementing these same hooks.

Each hook's docstring is its one-line reference; docs/plugins.md documents them in full and a
test fails when a hook here is missing from the docs or from the tests.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("regua")
hookimpl = pluggy.HookimplMarker("regua")


@hookspec
def regua_bureau_connectors(config):
    """Return a list of BureauConnector instances (credit reports for a CPF/CNPJ)."""


@hookspec
def regua_notification_channels(config):
    """Return a list of NotificationChannel instances (e-mail, SMS, WhatsApp, webhook…)."""


@hookspec
def regua_negativation_services(config):
    """Return a list of NegativationService instances (include/remove/status of negative records)."""


@hookspec
def regua_monitoring_sources(config):
    """Return a list of MonitoringSource instances (bureaus whose monitoring alerts are polled)."""


@hookspec
def regua_functions(config):
    """Return a list of dsl.environment.FunctionSpec: typed functions policies can call."""


@hookspec
def regua_decision_recorded(decision, record):
    """Called after a decision is recorded; `record` is the stored row (documents masked)."""


@hookspec
def regua_event_recorded(event):
    """Called after a collection or monitoring event is recorded (a contact, a negativation…)."""
