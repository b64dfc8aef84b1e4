"""Evaluating requests: resolve the policy, validate, evaluate, answer, record, count.

Kept apart from the HTTP layer so that POST /evaluate, the batch endpoint and tests share
one path. Policies whose connectors all answer from memory (the sandbox) and that loop over
no input list are evaluated on the event loop; any other policy runs in a worker thread, so
neither a slow bureau nor a long input stalls other requests. Every evaluation has a CPU
budget (`server.evaluation_budget`) and its lookups one deadline (`server.connector_budget`).
"""

from __future__ import annotations

import difflib
import hashlib
import time
from typing import Any

import anyio.to_thread
import msgspec

from regua.dsl.values import out_of_range_paths, to_json
from regua.engine import brazil
from regua.engine.connectors import MUST_NOT_BLOCK, Connectors, WouldBlock, mask_document
from regua.engine.prepared import InvalidInput
from regua.engine.recorded import encode_answers_json
from regua.engine.trace import uniform as uniform_trace

from .decision_log import DecisionLog
from .errors import ApiError
from .ids import new_decision_id
from .metrics import Metrics
from .policies import ActivePolicy, PolicyService
from .schemas import EvaluateResponse, ExperimentArmRef, PolicyRef
from .store import Store
from .store_common import document_hash

_encode = msgspec.json.Encoder().encode
# The input as stored in the decision log: JSON numbers arrive as Decimal and go back as numbers, the
# same text the caller sent (a percent 2.5 must stay percentage points, not become the text "2.5").
_encode_input = msgspec.json.Encoder(decimal_format="number").encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def _current_shape(body: str) -> str:
    """A stored answer as this server would write it: a decision recorded before the trace had one
    shape (a bare list at level rules) is replayed with the trace in the shape of today's answers."""
    if '"trace":[' not in body and '"trace":{"rules"' not in body:
        return body  # null, or already {"level": ...}
    data = msgspec.json.decode(body)
    data["trace"] = uniform_trace(data.get("trace"))
    return _encode(data).decode()


class Evaluation(msgspec.Struct):
    """A finished evaluation: the response body and, when it was replayed, a marker."""

    body: bytes
    replayed: bool = False


class Evaluator:
    def __init__(self, policies: PolicyService, connectors: Connectors, store: Store, log: DecisionLog,
                 metrics: Metrics, durability: str = "batched", today=brazil.today, connector_budget: float = 8.0,
                 evaluation_budget: float | None = 1.0, max_list_items: int | None = 10_000, experiments=None):
        self.policies = policies
        self.experiments = experiments  # server.experiments.ExperimentService: champion/challenger routing
        self.connector_budget = connector_budget
        self.evaluation_budget = evaluation_budget
        self.max_list_items = max_list_items
        self.connectors = connectors
        self.store = store
        self.log = log
        self.metrics = metrics
        self.sync_writes = durability == "sync"
        # The default clock is read once a minute, not per request; an injected one (tests) every time.
        self.today = brazil.PerMinute(today) if today is brazil.today else today

    def resolve(self, name: str | None, path_name: str | None = None) -> ActivePolicy:
        if path_name is not None and name is not None and name != path_name:
            raise ApiError(400, "POLICY_MISMATCH", f"the URL names policy '{path_name}' but the body names '{name}'",
                           [{"code": "POLICY_MISMATCH", "message": "differs from the URL", "location": "policy"}])
        name = path_name or name
        if not name:
            raise ApiError(400, "INVALID_REQUEST", "which policy? give `policy` in the body or POST /evaluate/{policy}",
                           [{"code": "REQUIRED", "message": "is required", "location": "policy"}])
        active = self.policies.get(name)
        if active is None:
            close = difflib.get_close_matches(name, list(self.policies.active), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ApiError(404, "UNKNOWN_POLICY", f"no policy named '{name}' is loaded{hint}",
                           [{"code": "UNKNOWN_POLICY", "message": f"'{name}' is not loaded{hint}",
                             "location": "policy"}])
        return active

    async def evaluate(self, name: str | None, data: dict[str, Any], *, trace: str = "off", dry_run: bool = False,
                       request_id: str | None = None, api_key: str | None = None,
                       path_name: str | None = None) -> Evaluation:
        started = time.perf_counter()
        deadline = time.monotonic() + self.connector_budget  # one budget for all the decision's lookups
        active = self.resolve(name, path_name)
        prepared = active.prepared
        try:
            if self.max_list_items is not None:
                prepared.check_list_sizes(data, self.max_list_items)
            inputs = prepared.validate(data)
        except InvalidInput as error:
            raise ApiError(422, "INVALID_INPUT", f"the input does not fit policy {prepared.name}",
                           error.to_list()) from None
        revision, route = active.revision, None
        if self.experiments is not None and self.experiments.running:
            route = self.experiments.route(prepared.name, inputs)
            if route is not None:  # the arm's revision decides (challengers have the champion's inputs)
                prepared = self.experiments.prepared_for(route, active)
                revision = route.arm.revision or active.revision
        input_hash = None
        if request_id is not None and not dry_run:
            # The values as the policy reads them, not as written: 4.0 and 4 for an int are one input.
            sent = {name: inputs[name] for name in data if name in inputs}
            input_hash = hashlib.sha256(_encode_sorted(to_json(sent, prepared.meta.input_type))).hexdigest()
            existing = await anyio.to_thread.run_sync(self.store.decision_by_request, prepared.name, request_id,
                                                      api_key)
            if existing is not None:
                return self._replay(existing, input_hash, request_id)
        today = self.today()
        budget = self.evaluation_budget
        decision = None
        if active.inline:
            # On the event loop, where nothing may wait on the network: a connector that could
            # only answer by waiting (a cache miss on PostgreSQL) raises WouldBlock, and the
            # evaluation is made again on a worker thread (engine.connectors.MUST_NOT_BLOCK).
            token = MUST_NOT_BLOCK.set(True)
            try:
                decision = prepared.evaluate_validated(inputs, connectors=self.connectors, trace=trace, as_of=today,
                                                       budget=budget)
            except WouldBlock:
                self.metrics.evaluations_moved_to_thread.inc()
            finally:
                MUST_NOT_BLOCK.reset(token)
        if decision is None:
            decision = await anyio.to_thread.run_sync(
                lambda: prepared.evaluate_validated(inputs, connectors=self.connectors, trace=trace, as_of=today,
                                                    deadline=deadline, budget=budget))
        decision_id = None if dry_run else new_decision_id()
        # Decision.to_dict's parts without its `policy` dict, and each lookup's arguments masked
        # once, for the answer and the recorded answers (encode_answers) alike.
        calls = decision.connector_calls
        masked = [[mask_document(a) for a in call._args] for call in calls]
        outputs, reasons, trace_out = decision.outputs_json(), decision.reasons_json(), decision.trace_json()
        calls_out = [call.to_dict(args) for call, args in zip(calls, masked)]
        elapsed = time.perf_counter() - started
        try:
            body = _encode(EvaluateResponse(
                decision_id, PolicyRef(prepared.name, prepared.version, revision), decision.outcome,
                outputs, reasons, trace_out, calls_out, round(elapsed * 1000, 3), dry_run,
                None if route is None else ExperimentArmRef(route.experiment.name, route.arm.name, route.arm.role)))
        except (ValueError, OverflowError):  # a whole number too long to write (Python's 4300-digit limit)
            paths = out_of_range_paths({"outputs": outputs, "reasons": reasons, "trace": trace_out}) or ["outputs"]
            raise ApiError(422, "OUTPUT_OUT_OF_RANGE", "the decision holds a number too large to report",
                           [{"code": "OUT_OF_RANGE", "message": "a whole number of 10^18 or more", "location": p}
                            for p in paths[:20]]) from None
        self.metrics.observe(prepared.name, decision.outcome, elapsed, calls)
        if dry_run:
            return Evaluation(body)
        document = inputs.get(active.document_field) if active.document_field else None
        document = str(document) if document else None
        # The JSON columns as the bytes just encoded, the document's hash and mask left to the writer,
        # which makes them from the document in clear at the end (store_common.text_row).
        answers = encode_answers_json(calls, masked)
        row = (decision_id, prepared.name, prepared.version, revision, decision.outcome,
               body, _encode_input(data), input_hash, None, None,
               request_id, api_key, round(elapsed * 1000, 3), answers, document)
        if route is not None:  # which arm decided, and the shadows beside it: off the response path
            self.experiments.worker.submit(route, decision_id, decision, inputs, today,
                                           None if answers is None else answers.decode(),
                                           document_hash(document) if document else None, row[6].decode(),
                                           body.decode())
        if request_id is not None:
            existing = await anyio.to_thread.run_sync(self.store.insert_decision_once, row)
            if existing is not None:  # another request with this id won the race
                return self._replay(existing, input_hash, request_id)
            self.log.notify_later(row, decision)
        elif self.sync_writes:
            await anyio.to_thread.run_sync(self.store.insert_decisions, [row])
            self.log.notify_later(row, decision)
        else:
            # The Decision object is kept only for plugin sinks: otherwise the queue holds plain rows.
            self.log.submit(row, decision if self.log.on_flush is not None else None)
        return Evaluation(body)

    @staticmethod
    def _replay(existing: dict, input_hash: str, request_id: str) -> Evaluation:
        if existing["input_hash"] != input_hash:
            raise ApiError(409, "IDEMPOTENCY_CONFLICT",
                           f"request_id '{request_id}' was already used with a different input",
                           [{"code": "IDEMPOTENCY_CONFLICT", "message": "already used with a different input",
                             "location": "request_id"}])
        return Evaluation(_current_shape(existing["body"]).encode(), replayed=True)
