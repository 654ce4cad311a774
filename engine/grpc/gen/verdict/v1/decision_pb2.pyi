from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    APPROVE: _ClassVar[Action]
    REVIEW: _ClassVar[Action]
    DECLINE: _ClassVar[Action]
ACTION_UNSPECIFIED: Action
APPROVE: Action
REVIEW: Action
DECLINE: Action

class DecideRequest(_message.Message):
    __slots__ = ("flow", "version", "request_id", "input")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    flow: str
    version: str
    request_id: str
    input: _struct_pb2.Struct
    def __init__(self, flow: _Optional[str] = ..., version: _Optional[str] = ..., request_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[DecideRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[DecideRequest, _Mapping]]] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DecideBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DecideBatchResult, _Mapping]]] = ...) -> None: ...

class DecideBatchResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: DecideResponse
    error: DecideError
    def __init__(self, response: _Optional[_Union[DecideResponse, _Mapping]] = ..., error: _Optional[_Union[DecideError, _Mapping]] = ...) -> None: ...

class DecideError(_message.Message):
    __slots__ = ("code", "message", "field_errors", "field_errors_omitted")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FIELD_ERRORS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field_errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    field_errors_omitted: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field_errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., field_errors_omitted: _Optional[int] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "message", "code")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    code: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("code", "message", "source", "rule_id", "feature", "contribution")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    source: str
    rule_id: str
    feature: str
    contribution: float
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., source: _Optional[str] = ..., rule_id: _Optional[str] = ..., feature: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

class FiredRule(_message.Message):
    __slots__ = ("id", "ruleset", "action", "reason_code", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    RULESET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    ruleset: str
    action: Action
    reason_code: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., ruleset: _Optional[str] = ..., action: _Optional[_Union[Action, str]] = ..., reason_code: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision_id", "action", "reasons", "scores", "flow", "version", "revision", "models", "fired_rules", "eval_us", "route", "request_id", "notice_reasons", "fallback", "fallback_step", "fallback_reason")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FIRED_RULES_FIELD_NUMBER: _ClassVar[int]
    EVAL_US_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTICE_REASONS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_STEP_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    action: Action
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    scores: _containers.ScalarMap[str, float]
    flow: str
    version: str
    revision: str
    models: _containers.ScalarMap[str, str]
    fired_rules: _containers.RepeatedCompositeFieldContainer[FiredRule]
    eval_us: float
    route: str
    request_id: str
    notice_reasons: _containers.RepeatedCompositeFieldContainer[NoticeReason]
    fallback: bool
    fallback_step: str
    fallback_reason: str
    def __init__(self, decision_id: _Optional[str] = ..., action: _Optional[_Union[Action, str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., flow: _Optional[str] = ..., version: _Optional[str] = ..., revision: _Optional[str] = ..., models: _Optional[_Mapping[str, str]] = ..., fired_rules: _Optional[_Iterable[_Union[FiredRule, _Mapping]]] = ..., eval_us: _Optional[float] = ..., route: _Optional[str] = ..., request_id: _Optional[str] = ..., notice_reasons: _Optional[_Iterable[_Union[NoticeReason, _Mapping]]] = ..., fallback: _Optional[bool] = ..., fallback_step: _Optional[str] = ..., fallback_reason: _Optional[str] = ...) -> None: ...

class NoticeReason(_message.Message):
    __slots__ = ("code", "text", "source", "feature")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    code: str
    text: str
    source: str
    feature: str
    def __init__(self, code: _Optional[str] = ..., text: _Optional[str] = ..., source: _Optional[str] = ..., feature: _Optional[str] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlowInfo(_message.Message):
    __slots__ = ("name", "live_version", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    live_version: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., live_version: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ...) -> None: ...

class ListFlowsResponse(_message.Message):
    __slots__ = ("flows",)
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[FlowInfo]
    def __init__(self, flows: _Optional[_Iterable[_Union[FlowInfo, _Mapping]]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyProblem(_message.Message):
    __slots__ = ("path", "line", "code", "message", "rule", "hint", "severity", "flow")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    path: str
    line: int
    code: str
    message: str
    rule: str
    hint: str
    severity: str
    flow: str
    def __init__(self, path: _Optional[str] = ..., line: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., rule: _Optional[str] = ..., hint: _Optional[str] = ..., severity: _Optional[str] = ..., flow: _Optional[str] = ...) -> None: ...

class ReloadResult(_message.Message):
    __slots__ = ("ok", "trigger", "at_unix_ms", "revision", "message", "problems", "tests_run", "tests_failed", "failed_tests", "result", "warnings")
    OK_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    TESTS_RUN_FIELD_NUMBER: _ClassVar[int]
    TESTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILED_TESTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    trigger: str
    at_unix_ms: int
    revision: str
    message: str
    problems: _containers.RepeatedCompositeFieldContainer[PolicyProblem]
    tests_run: int
    tests_failed: int
    failed_tests: _containers.RepeatedScalarFieldContainer[str]
    result: str
    warnings: _containers.RepeatedCompositeFieldContainer[PolicyProblem]
    def __init__(self, ok: _Optional[bool] = ..., trigger: _Optional[str] = ..., at_unix_ms: _Optional[int] = ..., revision: _Optional[str] = ..., message: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[PolicyProblem, _Mapping]]] = ..., tests_run: _Optional[int] = ..., tests_failed: _Optional[int] = ..., failed_tests: _Optional[_Iterable[str]] = ..., result: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[PolicyProblem, _Mapping]]] = ...) -> None: ...

class FlowStatus(_message.Message):
    __slots__ = ("name", "versions", "live_version", "challenger_version", "challenger_share", "challenger_key", "shadow_versions", "revisions", "routing_revision", "state", "problems", "warnings")
    class RevisionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_SHARE_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_KEY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    live_version: str
    challenger_version: str
    challenger_share: float
    challenger_key: str
    shadow_versions: _containers.RepeatedScalarFieldContainer[str]
    revisions: _containers.ScalarMap[str, str]
    routing_revision: str
    state: str
    problems: _containers.RepeatedCompositeFieldContainer[PolicyProblem]
    warnings: _containers.RepeatedCompositeFieldContainer[PolicyProblem]
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ..., live_version: _Optional[str] = ..., challenger_version: _Optional[str] = ..., challenger_share: _Optional[float] = ..., challenger_key: _Optional[str] = ..., shadow_versions: _Optional[_Iterable[str]] = ..., revisions: _Optional[_Mapping[str, str]] = ..., routing_revision: _Optional[str] = ..., state: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[PolicyProblem, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[PolicyProblem, _Mapping]]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("revision", "flows", "last_reload", "serving_since_unix_ms", "metrics", "root")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_FIELD_NUMBER: _ClassVar[int]
    SERVING_SINCE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    revision: str
    flows: _containers.RepeatedCompositeFieldContainer[FlowStatus]
    last_reload: ReloadResult
    serving_since_unix_ms: int
    metrics: _containers.ScalarMap[str, float]
    root: str
    def __init__(self, revision: _Optional[str] = ..., flows: _Optional[_Iterable[_Union[FlowStatus, _Mapping]]] = ..., last_reload: _Optional[_Union[ReloadResult, _Mapping]] = ..., serving_since_unix_ms: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., root: _Optional[str] = ...) -> None: ...

class ListEntryChange(_message.Message):
    __slots__ = ("list", "value", "reason", "actor", "expires_at_unix_ms", "note")
    LIST_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    list: str
    value: str
    reason: str
    actor: str
    expires_at_unix_ms: int
    note: str
    def __init__(self, list: _Optional[str] = ..., value: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., expires_at_unix_ms: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ListChangeResult(_message.Message):
    __slots__ = ("seq", "action", "list", "key", "record_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    action: str
    list: str
    key: str
    record_json: str
    def __init__(self, seq: _Optional[int] = ..., action: _Optional[str] = ..., list: _Optional[str] = ..., key: _Optional[str] = ..., record_json: _Optional[str] = ...) -> None: ...

class GetListRequest(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: str
    def __init__(self, list: _Optional[str] = ...) -> None: ...

class ListEntry(_message.Message):
    __slots__ = ("entry", "key", "note", "added_by", "added_at_unix_ms", "expires_at_unix_ms")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ADDED_BY_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    entry: str
    key: str
    note: str
    added_by: str
    added_at_unix_ms: int
    expires_at_unix_ms: int
    def __init__(self, entry: _Optional[str] = ..., key: _Optional[str] = ..., note: _Optional[str] = ..., added_by: _Optional[str] = ..., added_at_unix_ms: _Optional[int] = ..., expires_at_unix_ms: _Optional[int] = ...) -> None: ...

class GetListResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ListEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ListEntry, _Mapping]]] = ...) -> None: ...

class CaseDecision(_message.Message):
    __slots__ = ("seq", "case_id", "decision_id", "request_id", "flow", "version", "disposition", "note", "actor", "decided_at_unix_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    case_id: str
    decision_id: str
    request_id: str
    flow: str
    version: str
    disposition: str
    note: str
    actor: str
    decided_at_unix_ms: int
    def __init__(self, seq: _Optional[int] = ..., case_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., request_id: _Optional[str] = ..., flow: _Optional[str] = ..., version: _Optional[str] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ..., actor: _Optional[str] = ..., decided_at_unix_ms: _Optional[int] = ...) -> None: ...

class ListCaseDecisionsRequest(_message.Message):
    __slots__ = ("since", "page_size", "flow")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    since: int
    page_size: int
    flow: str
    def __init__(self, since: _Optional[int] = ..., page_size: _Optional[int] = ..., flow: _Optional[str] = ...) -> None: ...

class ListCaseDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_since")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_SINCE_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[CaseDecision]
    next_since: int
    def __init__(self, decisions: _Optional[_Iterable[_Union[CaseDecision, _Mapping]]] = ..., next_since: _Optional[int] = ...) -> None: ...

class WatchCasesRequest(_message.Message):
    __slots__ = ("since", "flow")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    since: int
    flow: str
    def __init__(self, since: _Optional[int] = ..., flow: _Optional[str] = ...) -> None: ...

class GetCaseRequest(_message.Message):
    __slots__ = ("case_id",)
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    def __init__(self, case_id: _Optional[str] = ...) -> None: ...

class DecideCaseRequest(_message.Message):
    __slots__ = ("case_id", "disposition", "note", "outcome")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    disposition: str
    note: str
    outcome: str
    def __init__(self, case_id: _Optional[str] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class Case(_message.Message):
    __slots__ = ("case_id", "decision_id", "request_id", "flow", "version", "route", "queue", "priority", "state", "assignee", "disposition", "note", "decided_by", "opened_at_unix_ms", "due_at_unix_ms", "decided_at_unix_ms", "decided_seq", "linked_case_ids", "record_json")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LINKED_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    decision_id: str
    request_id: str
    flow: str
    version: str
    route: str
    queue: str
    priority: str
    state: str
    assignee: str
    disposition: str
    note: str
    decided_by: str
    opened_at_unix_ms: int
    due_at_unix_ms: int
    decided_at_unix_ms: int
    decided_seq: int
    linked_case_ids: _containers.RepeatedScalarFieldContainer[str]
    record_json: str
    def __init__(self, case_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., request_id: _Optional[str] = ..., flow: _Optional[str] = ..., version: _Optional[str] = ..., route: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[str] = ..., state: _Optional[str] = ..., assignee: _Optional[str] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ..., decided_by: _Optional[str] = ..., opened_at_unix_ms: _Optional[int] = ..., due_at_unix_ms: _Optional[int] = ..., decided_at_unix_ms: _Optional[int] = ..., decided_seq: _Optional[int] = ..., linked_case_ids: _Optional[_Iterable[str]] = ..., record_json: _Optional[str] = ...) -> None: ...

class RecordEventRequest(_message.Message):
    __slots__ = ("type", "fields", "event_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    type: str
    fields: _struct_pb2.Struct
    event_time: float
    def __init__(self, type: _Optional[str] = ..., fields: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., event_time: _Optional[float] = ...) -> None: ...

class RecordEventResponse(_message.Message):
    __slots__ = ("event_time", "recorded")
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    event_time: float
    recorded: int
    def __init__(self, event_time: _Optional[float] = ..., recorded: _Optional[int] = ...) -> None: ...

class OutcomeEntry(_message.Message):
    __slots__ = ("decision_id", "outcome", "date")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    outcome: str
    date: str
    def __init__(self, decision_id: _Optional[str] = ..., outcome: _Optional[str] = ..., date: _Optional[str] = ...) -> None: ...

class RecordOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[OutcomeEntry]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[OutcomeEntry, _Mapping]]] = ...) -> None: ...

class RecordOutcomesResponse(_message.Message):
    __slots__ = ("added", "already")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_FIELD_NUMBER: _ClassVar[int]
    added: int
    already: int
    def __init__(self, added: _Optional[int] = ..., already: _Optional[int] = ...) -> None: ...

class AddCaseNoteRequest(_message.Message):
    __slots__ = ("case_id", "text")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    text: str
    def __init__(self, case_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...
