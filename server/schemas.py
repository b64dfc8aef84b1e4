"""Request and response bodies of the HTTP API, as msgspec Structs (they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

#: The HTTP API's version (the OpenAPI documents say it).
API_VERSION = "1"

Trace = Literal["off", "rules", "full"]
RequestId = Annotated[str, Meta(min_length=1, max_length=200, description="idempotency key")]
PolicyName = Annotated[str, Meta(min_length=1, max_length=200)]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    location: str | None = None


class ErrorBody(msgspec.Struct):
    """The one error body every endpoint uses."""

    code: str
    message: str
    errors: list[ErrorDetail] = []


# ---- evaluation ----
class EvaluateNamedRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST /evaluate/{policy}: the policy is in the URL (`policy` here, if given, must agree)."""

    input: dict[str, Any]
    policy: PolicyName | None = None
    trace: Trace = "off"
    #: Evaluate without recording the decision.
    dry_run: bool = False
    request_id: RequestId | None = None


class EvaluateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST /evaluate: the policy is named in the body."""

    input: dict[str, Any]
    policy: PolicyName
    trace: Trace = "off"
    #: Evaluate without recording the decision.
    dry_run: bool = False
    request_id: RequestId | None = None


class PolicyRef(msgspec.Struct):
    name: str
    version: str
    revision: int


class PolicySchema(msgspec.Struct):
    """GET /policies/{name}/schema: the active version's input and outputs as JSON Schema."""

    policy: PolicyRef
    input: dict[str, Any]
    output: dict[str, Any]


class ReasonOut(msgspec.Struct, omit_defaults=True):
    code: str | None
    message: str | None
    rule: str | None
    outcome: str
    line: int | None
    values: dict[str, Any] = {}
    error: dict[str, Any] | None = None


class ConnectorCallOut(msgspec.Struct):
    connector: str
    args: list[str]
    status: str
    duration_ms: float
    error: str | None
    cached: bool
    cost: str | None


class TraceRule(msgspec.Struct):
    """One rule in a trace: what it did and what it contributed to the decision."""

    rule: str
    line: int | None
    result: Literal["fired", "not_fired", "error"]
    #: The rule's verb when it fired, the policy's on-error verb when it failed, null otherwise.
    outcome: str | None
    #: The failure (`code`, `message`, `line`) when `result` is "error", else null.
    error: dict[str, Any] | None


class TableHit(msgspec.Struct):
    row: int
    line: int


class TraceOut(msgspec.Struct):
    """The trace, one shape at every level (null when `trace` is "off"): at "rules", the rules that
    fired or failed and no values or tables; at "full", every rule evaluated, every value computed
    (documents masked) and the row matched in each table evaluated."""

    level: Literal["rules", "full"]
    rules: list[TraceRule]
    values: dict[str, Any]
    tables: dict[str, list[TableHit]]


class ExperimentArmRef(msgspec.Struct):
    """The experiment arm that made a decision (never a shadow: a shadow does not decide)."""

    experiment: str
    arm: str
    role: Literal["champion", "challenger"]


class EvaluateResponse(msgspec.Struct, omit_defaults=True):
    decision_id: str | None
    policy: PolicyRef
    outcome: str
    outputs: dict[str, Any]
    reasons: list[ReasonOut]
    trace: TraceOut | None
    connector_calls: list[ConnectorCallOut]
    duration_ms: float
    dry_run: bool
    #: Present only when the policy runs an experiment and this request was routed to one of its arms.
    experiment: ExperimentArmRef | None = None


class BatchItem(msgspec.Struct, forbid_unknown_fields=True):
    input: dict[str, Any]
    policy: PolicyName | None = None
    request_id: RequestId | None = None


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: list[BatchItem]
    policy: PolicyName | None = None
    trace: Trace = "off"
    dry_run: bool = False


class BatchLine(msgspec.Struct, omit_defaults=True):
    """One NDJSON line of a batch response: `decision` or `error` for item `index`."""

    index: int
    decision: EvaluateResponse | None = None
    error: ErrorBody | None = None


# ---- policies ----
class PublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    source: Annotated[str, Meta(min_length=1)]


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    revision: Annotated[int, Meta(ge=1, le=2**63 - 1)]  # what SQLite can hold


class PolicySummary(msgspec.Struct):
    name: str
    kind: str
    version: str
    revision: int
    description: str | None
    inputs: list[str]
    evaluation: Literal["inline", "thread"]


class PolicyVersionOut(msgspec.Struct):
    revision: int
    version: str
    source_hash: str
    origin: str
    created_at: str
    active: bool


class ActivationOut(msgspec.Struct):
    revision: int
    version: str
    activated_at: str
    activated_by: str
    reason: str


class PolicyDetail(msgspec.Struct):
    name: str
    kind: str
    version: str
    revision: int
    description: str | None
    source: str
    versions: list[PolicyVersionOut]
    activations: list[ActivationOut]
    graph: dict[str, Any]


class Problem(msgspec.Struct):
    file: str
    errors: list[ErrorDetail]


class PolicyList(msgspec.Struct):
    policies: list[PolicySummary]
    problems: list[Problem]


class PublishResponse(msgspec.Struct):
    name: str
    version: str
    revision: int
    created: bool


# ---- decisions ----
class DecisionRecord(msgspec.Struct):
    decision_id: str
    created_at: str
    policy: PolicyRef
    outcome: str
    outputs: dict[str, Any]
    reasons: list[ReasonOut]
    input: dict[str, Any]
    explanation: str
    connector_calls: list[ConnectorCallOut]
    trace: TraceOut | None
    request_id: str | None
    api_key: str | None
    duration_ms: float
    #: The experiment arm that decided and the shadow challengers evaluated beside it; null when the
    #: policy ran no experiment for this request.
    experiment: DecisionExperiment | None = None


class ShadowDecision(msgspec.Struct):
    """A shadow challenger's decision on the same request: logged, never answered."""

    arm: str
    revision: int | None
    outcome: str
    reason_codes: list[str]
    #: Whether the shadow reached the same outcome as the arm that decided.
    agrees: bool


class DecisionExperiment(msgspec.Struct):
    experiment: str
    arm: str
    role: Literal["champion", "challenger"]
    #: Shadow decisions recorded so far (a shadow is sampled, and dropped when the server is behind).
    shadows: list[ShadowDecision]


class CounterfactualChange(msgspec.Struct):
    fact: str  # as written in the policy's `actionable` block
    label: str  # for people
    type: str  # int, decimal, money or percent
    from_: Any = msgspec.field(name="from")
    to: Any = None
    direction: str = "down"  # down or up


class CounterfactualAlternative(msgspec.Struct):
    changes: list[CounterfactualChange]
    outcome: str
    reasons: list[str]
    size: float  # the changes' sizes relative to their declared bounds, summed


class CounterfactualsOut(msgspec.Struct):
    decision_id: str
    outcome: str
    target: str
    status: str  # found, none_within_bounds, not_needed, no_actionable_facts
    facts: list[str]
    alternatives: list[CounterfactualAlternative]
    complete: bool
    evaluations: int
    skipped: list[str]
    sentence: str | None


class DecisionSummary(msgspec.Struct):
    decision_id: str
    created_at: str
    policy: PolicyRef
    outcome: str
    reason_codes: list[str]
    document: str | None


class DecisionPage(msgspec.Struct):
    items: list[DecisionSummary]
    #: Pass as `before` to get the next (older) page; null on the last page.
    next: str | None


# ---- operations ----
class Health(msgspec.Struct):
    status: str
    sandbox: bool
    version: str


class Readiness(msgspec.Struct):
    status: str
    policies: int
    problems: int
    decision_backlog: int
    breakers: dict[str, str]


# ---- experiments ----
_ARM_NAME = Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SAMPLE = Meta(description="a fraction of requests in (0, 1]")
# Shares: percent of traffic, from 0 to 100 with at most two decimals. The range is checked by the
# service, so that a share outside it is the documented INVALID_SHARES, not a generic schema error.
_SHARE = Meta(description="percent of traffic, 0 to 100, at most two decimals")


class ChallengerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, _ARM_NAME]
    share: Annotated[float, _SHARE] = 0  # percent of traffic; 0 makes a shadow challenger
    source: Annotated[str, Meta(min_length=1)] | None = None  # a new version, stored (never activated)
    revision: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None  # or an existing revision
    # Shadows: the fraction of requests evaluated, in (0, 1]. The range is checked by the service, so
    # that a sample outside it is the documented INVALID_SAMPLE, not a generic schema error.
    sample: Annotated[float, _SAMPLE] | None = None


class ExperimentCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, _ARM_NAME]
    policy: Annotated[str, Meta(min_length=1, max_length=200)]
    challengers: Annotated[list[ChallengerIn], Meta(min_length=1, max_length=10)]
    key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None  # default: the CPF/CNPJ input
    salt: Annotated[str, Meta(min_length=1, max_length=200)] | None = None  # default: random
    champion_share: Annotated[float, _SHARE] | None = None


class SharesIn(msgspec.Struct, forbid_unknown_fields=True):
    shares: dict[str, Annotated[float, _SHARE]] = {}  # the range: INVALID_SHARES, from the service
    samples: dict[str, Annotated[float, _SAMPLE]] = {}  # the range: INVALID_SAMPLE, from the service


class PromoteIn(msgspec.Struct, forbid_unknown_fields=True):
    arm: Annotated[str, _ARM_NAME]
