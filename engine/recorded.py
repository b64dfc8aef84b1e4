"""Recorded connector answers: what each lookup of a decision answered, kept with the decision so
that the policy lab (regua.lab) can evaluate another policy on the same facts without asking the
bureau again.

The record is compact JSON, one entry per lookup, in the order the policy made them:

    [{"connector": "bureau.serasa", "args": ["************81"], "status": "ok", "answer": {...}},
     {"connector": "portfolio.customer", "args": ["************81"], "status": "failed",
      "error": "CONNECTOR_TIMEOUT"}]

`args` are masked (engine.connectors.mask_document): a replayed lookup is matched by its masked
arguments, so the record never holds a document in clear beyond what the answer itself holds.
`answer` is the answer as the connector gave it, before the policy's contract read it, so a
candidate with another contract reads it as it would have read it live. It is personal data like
the decision's input, kept and purged with it (server/retention.py).
"""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from .connectors import ConnectorError, Connectors, mask_document


def _hook(value: Any) -> Any:
    return str(value)  # typed values (Percent, durations…) as their text; the contract reads them back


_encode = msgspec.json.Encoder(enc_hook=_hook).encode


def _entry(call, args: list[str] | None = None) -> dict:
    entry: dict[str, Any] = {"connector": call.connector,
                             "args": [mask_document(a) for a in call._args] if args is None else args,
                             "status": call.status}
    if call.answer is not None:
        entry["answer"] = call.answer
    if call.error:
        entry["error"] = call.error
    return entry


def encode_answers(calls: Iterable, masked_args: list[list[str]] | None = None) -> str | None:
    """The recorded answers of a decision's connector calls (engine.decision.ConnectorCall), as
    compact JSON; None when the decision made no lookup. `masked_args`: each call's arguments
    already masked (mask_document), when the caller has them."""
    encoded = encode_answers_json(calls, masked_args)
    return None if encoded is None else encoded.decode()


def encode_answers_json(calls: Iterable, masked_args: list[list[str]] | None = None) -> bytes | None:
    """encode_answers as UTF-8 bytes."""
    if masked_args is None:
        entries = [_entry(call) for call in calls]
    else:
        entries = [_entry(call, args) for call, args in zip(calls, masked_args)]
    if not entries:
        return None
    try:
        return _encode(entries)
    except (TypeError, ValueError, OverflowError):  # an answer that is not data: recorded as not kept
        out = []
        for entry in entries:
            try:
                _encode(entry)
            except (TypeError, ValueError, OverflowError):
                entry = {k: v for k, v in entry.items() if k != "answer"} | {"status": "unrecorded"}
            out.append(entry)
        return _encode(out)


def decode_answers(text: str | None) -> dict[tuple[str, tuple[str, ...]], dict]:
    """Recorded answers by (connector, masked args). Raises ValueError on a damaged record."""
    if not text:
        return {}
    try:
        entries = msgspec.json.decode(text)
    except msgspec.DecodeError as error:
        raise ValueError(f"recorded connector answers are not JSON: {error}") from None
    if not isinstance(entries, list):
        raise ValueError("recorded connector answers are not a list")
    out = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("connector"), str):
            out.setdefault((entry["connector"], tuple(map(str, entry.get("args") or ()))), entry)
    return out


class NotRecorded(ConnectorError):
    def __init__(self, connector: str):
        super().__init__("NOT_RECORDED", f"{connector}: this lookup was not made by the recorded decision")


class LiveRefused(ConnectorError):
    """A live lookup that was not made (no such live connector, or the budget is spent): the
    decision still needs a live lookup."""


class _Recorded:
    inline = True  # answers from memory

    __slots__ = ("owner", "name")

    def __init__(self, owner: "RecordedConnectors", name: str):
        self.owner = owner
        self.name = name

    def __call__(self, *args):
        entry = self.owner.current.get((self.name, tuple(map(mask_document, args))))
        if entry is None or entry.get("status") == "unrecorded":
            live = self.owner.live
            if live is not None:
                try:
                    answer = live(self.name, args)
                except LiveRefused:
                    self.owner.misses.add(self.name)
                    raise
                self.owner.live_used.add(self.name)
                return answer
            self.owner.misses.add(self.name)
            raise NotRecorded(self.name)
        if "answer" in entry:
            return entry["answer"]
        code = str(entry.get("error") or "FAILED")
        raise ConnectorError(code[len("CONNECTOR_"):] if code.startswith("CONNECTOR_") else code,
                             "recorded failure")


class RecordedConnectors(Connectors):
    """Connectors that answer what a recorded decision's lookups answered (`load` one record, then
    evaluate). A lookup the record does not hold fails with NOT_RECORDED and is listed in
    `misses`: the decision would need a live lookup. With `live` (a callable (name, args) ->
    answer, raising LiveRefused when it will not ask), such a lookup is made live instead and
    listed in `live_used`."""

    def __init__(self, names: Iterable[str], live=None):
        self.current: dict = {}
        self.misses: set[str] = set()
        self.live = live
        self.live_used: set[str] = set()
        super().__init__({name: _Recorded(self, name) for name in names})

    def answers(self) -> dict[str, Any]:
        """Connector -> the answer its first recorded lookup got (the loaded record's)."""
        out: dict[str, Any] = {}
        for (name, _args), entry in self.current.items():
            if name not in out and "answer" in entry:
                out[name] = entry["answer"]
        return out

    def load(self, recorded: str | None) -> None:
        self.current = decode_answers(recorded)
        self.misses = set()
        self.live_used = set()
