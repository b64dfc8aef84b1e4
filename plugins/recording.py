"""Record bureau answers once, replay them later: offline tests, demos and audits of a decision.

    recorder = RecordingBureau(HTTPJSONBureau(name="serasa", ...), "recordings/")
    registry = Registry.load(extra=[BureauPlugin(recorder)])       # calls the provider, records
    ...
    registry = Registry.load(extra=[BureauPlugin(ReplayBureau("recordings/", "serasa"))])  # offline

or, on a registry already loaded, `record(registry, folder)` / `replay(registry, folder)` swap
every bureau for its recorder / replayer (before its first call).

One file per (connector, document), named `sha256(connector name NUL document).json`: the
document never appears in clear in a file name (nor in the file). A file holds either the
report, as the contract's msgspec JSON (money as text, dates ISO), or the failure's code:

    {"format": 1, "connector": "serasa", "recorded_at": "2026-11-22T10:00:00+00:00",
     "report": {...}}                       # or "error": {"code": "NOT_FOUND", "transient": false}

A later answer for the same document overwrites the file (a retried call keeps its outcome).
Recordings hold what the bureau said, which is personal data (partners' names and documents):
keep real recordings out of version control; commit only synthetic ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import os
import tempfile
from pathlib import Path

import msgspec

from regua.engine.connectors import ConnectorError

from .connectors import BureauConnector, TransientError
from .contracts import BureauReport
from .hookspecs import hookimpl

FORMAT = 1
_METADATA = ("timeout", "retries", "backoff", "failure_threshold", "reset_after", "ttl", "cost")


class Recording(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    connector: str
    recorded_at: dt.datetime
    report: BureauReport | None = None
    error: dict | None = None  # {"code": ..., "transient": bool}


def recording_path(folder: str | Path, connector: str, document: str) -> Path:
    """Where the answer of `connector` for `document` is recorded (the name is a sha256)."""
    digest = hashlib.sha256(f"{connector}\0{document}".encode()).hexdigest()
    return Path(folder) / f"{digest}.json"


def _write(path: Path, recording: Recording) -> None:
    """Atomically: a concurrent reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".recording-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(msgspec.json.encode(recording))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class RecordingBureau(BureauConnector):
    """Calls `inner` and records each answer (or failure code) under `folder`.

    It has the inner connector's name and settings (deadline, retries, breaker, TTL, cost), so
    it can stand in for it in a Registry; `name=` records under another name."""

    def __init__(self, inner: BureauConnector, folder: str | Path, name: str | None = None,
                 clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.inner = inner
        self.folder = Path(folder)
        self.name = name or inner.name
        self.clock = clock
        for attribute in _METADATA:
            setattr(self, attribute, getattr(inner, attribute))
        if inspect.iscoroutinefunction(inner.fetch):
            self.fetch = self._fetch_async  # the runtime awaits it on its event loop

    def _record(self, document: str, report=None, error: BaseException | None = None) -> None:
        if error is None:
            if not isinstance(report, BureauReport):
                report = msgspec.convert(report, BureauReport)
            recording = Recording(connector=self.name, recorded_at=self.clock(), report=report)
        else:
            code = error.code if isinstance(error, ConnectorError) else "FAILED"
            recording = Recording(connector=self.name, recorded_at=self.clock(),
                                  error={"code": code, "transient": isinstance(error, TransientError)})
        _write(recording_path(self.folder, self.name, document), recording)

    def fetch(self, document: str) -> BureauReport:
        try:
            report = self.inner.fetch(document)
        except Exception as error:
            self._record(document, error=error)
            raise
        self._record(document, report)
        return report

    async def _fetch_async(self, document: str) -> BureauReport:
        try:
            report = await self.inner.fetch(document)
        except Exception as error:
            self._record(document, error=error)
            raise
        self._record(document, report)
        return report


class ReplayBureau(BureauConnector):
    """Answers from the recordings of connector `name` under `folder`; never calls anyone.

    A document without a recording fails with NOT_RECORDED; a recorded failure fails again with
    its code (as a TransientError when it was one). Replays are free (cost "0") and instant."""

    timeout = 5.0
    retries = 0
    ttl = 0  # never cached: it is free; the recordings are the cache
    cost = "0"

    def __init__(self, folder: str | Path, name: str, **metadata):
        self.folder = Path(folder)
        self.name = name
        for attribute, value in metadata.items():
            if attribute not in _METADATA:
                raise TypeError(f"ReplayBureau: unknown setting {attribute!r}")
            setattr(self, attribute, value)
        self._decoder = msgspec.json.Decoder(Recording)

    def fetch(self, document: str) -> BureauReport:
        path = recording_path(self.folder, self.name, document)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConnectorError("NOT_RECORDED", f"{self.name}: no recording for this document") from None
        try:
            recording = self._decoder.decode(data)
        except msgspec.DecodeError:
            raise ConnectorError("BAD_ANSWER", f"{self.name}: damaged recording {path.name}") from None
        if recording.report is not None:
            return recording.report
        error = recording.error or {}
        code = str(error.get("code") or "FAILED")
        if error.get("transient"):
            raise TransientError(code, f"{self.name}: recorded failure")
        raise ConnectorError(code, f"{self.name}: recorded failure")


class BureauPlugin:
    """A plugin object providing fixed bureau connectors, for Registry.load(extra=[...])."""

    def __init__(self, *connectors: BureauConnector, name: str = "recording"):
        self.__name__ = name  # the plugin's name in the plugin manager (must be unique)
        self.connectors = list(connectors)

    @hookimpl
    def regua_bureau_connectors(self, config):
        return list(self.connectors)


def record(registry, folder: str | Path) -> None:
    """Swap every bureau of `registry` for a RecordingBureau around it (before it is first called)."""
    for name, connector in list(registry.bureaus.items()):
        if not isinstance(connector, RecordingBureau):
            registry.bureaus[name] = RecordingBureau(connector, folder)
        registry._resilient.pop(name, None)


def replay(registry, folder: str | Path) -> None:
    """Swap every bureau of `registry` for a ReplayBureau reading `folder` (before it is first called)."""
    for name in list(registry.bureaus):
        registry.bureaus[name] = ReplayBureau(folder, name)
        registry._resilient.pop(name, None)
