"""Counterfactual explanations of stored decisions (`GET /decisions/{id}/counterfactuals`,
`regua explain DECISION_ID --counterfactual`).

The search (engine.counterfactuals) runs on what the decision saw: its input as received, the
connector answers recorded with it (no bureau is asked again), its date in Brasília and the policy
revision that made it (the active one when it still is, else that revision's source from the store).
"""

from __future__ import annotations

import collections
import threading

import msgspec

from regua.engine.brazil import BRASILIA
from regua.engine.counterfactuals import Counterfactuals, find_counterfactuals
from regua.engine.prepared import InvalidInput
from regua.engine.recorded import decode_answers

from .ids import id_time
from .policies import PolicyRejected


class NotExplainable(Exception):
    """Why a stored decision cannot be searched: `status` (HTTP), a stable `code`, a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def decision_policy(row: dict, store, compile_source, active=None):
    """The PreparedPolicy that made the stored decision `row`. `active`: the ActivePolicy serving
    the policy now (reused when it is the same revision); `compile_source(source, file)` otherwise."""
    if active is not None and active.revision == row["revision"]:
        return active.prepared
    version = store.policy_version(row["policy"], row["revision"]) if row["revision"] is not None else None
    if version is None:
        raise NotExplainable(409, "POLICY_VERSION_UNKNOWN",
                             f"the store no longer holds revision {row['revision']} of policy '{row['policy']}'")
    return compile_source(version["source"], version["origin"] or row["policy"])


class _Recent:
    """The last searches, by decision, policy revision and options: a decision's page, its
    customer explanation and GET /decisions/{id}/counterfactuals ask for the same search one after
    the other, and a stored decision never changes (a purge is checked before the cache is read)."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


RECENT = _Recent()


def counterfactuals_of(row: dict, prepared, **options) -> Counterfactuals:
    if row.get("purged_at") or row.get("input") is None:
        raise NotExplainable(410, "DECISION_PURGED", "this decision's input was purged (retention); "
                             "it can no longer be explained by counterfactuals")
    key = (row["id"], prepared.meta.source_hash, tuple(sorted(options.items())))
    found = RECENT.get(key)
    if found is None:
        found = _search(row, prepared, **options)
        RECENT.put(key, found)
    return found


def _search(row: dict, prepared, **options) -> Counterfactuals:
    try:
        inputs = prepared.validate(msgspec.json.decode(row["input"]))
        record = decode_answers(row.get("connector_answers"))
    except (InvalidInput, ValueError, msgspec.DecodeError) as error:
        raise NotExplainable(409, "DECISION_NOT_REPLAYABLE", f"the stored decision cannot be re-evaluated: {error}") \
            from None
    as_of = id_time(row["id"]).astimezone(BRASILIA).date()
    return find_counterfactuals(prepared, inputs, record, as_of, **options)


def customer_counterfactuals(row: dict, store, policies) -> dict | None:
    """For the customer's explanation (GET /decisions/{id}, the console's decision page): what would
    have got an approval, when the policy says what may change. Best effort: a decision that cannot
    be searched is explained without it. `policies`: the server's PolicyService."""
    if row["outcome"] == "approve" or row.get("purged_at"):
        return None
    try:
        prepared = decision_policy(row, store, policies.compile, policies.get(row["policy"]))
        return counterfactuals_of(row, prepared).to_dict()
    except (NotExplainable, PolicyRejected):
        return None
