"""Every engine error has one gRPC status code; errors reach clients named, never as UNKNOWN."""

import inspect
import json

import grpc
import pytest

from engine import errors
from engine.cases import errors as case_errors
from engine.cases.errors import CaseNotFound, CaseStoreError, IllegalTransition
from engine.errors import FieldError, Problem
from engine.grpc.status import FIELD_ERRORS_KEY, STATUS_BY_ERROR, field_errors_from, status_for, translate_errors

from .grpc_fakes import AbortError, FakeContext

ERROR_CLASSES = [
    obj
    for module in (errors, case_errors)
    for _, obj in inspect.getmembers(module, inspect.isclass)
    if issubclass(obj, errors.VerdictError) and obj.__module__ == module.__name__
]

EXAMPLES = {
    errors.InvalidInput: lambda: errors.InvalidInput([FieldError("age", "must be at least 18", "out_of_range")]),
    errors.FlowNotFound: lambda: errors.FlowNotFound("nope", ["credit_application"]),
    errors.VersionNotFound: lambda: errors.VersionNotFound("credit_application", "9", ["1"]),
    errors.PolicyError: lambda: errors.PolicyError([Problem("rules/x.yaml", "bad", "bad")]),
    errors.ModelLoadError: lambda: errors.ModelLoadError("model_artifacts/m/1", "sha256 mismatch"),
    errors.FlowUnavailable: lambda: errors.FlowUnavailable("qa", [Problem("rules/qa.yaml", "bad", "bad", line=3)]),
    IllegalTransition: lambda: IllegalTransition("d1", "decided", "decide"),
}


def _example(cls):
    return EXAMPLES.get(cls, lambda: cls("something"))()


def test_every_engine_error_class_is_in_the_table():
    """Each VerdictError subclass defined in engine.errors has its own entry in the one table."""
    assert ERROR_CLASSES, "found no error classes"
    missing = [cls.__name__ for cls in ERROR_CLASSES if cls not in STATUS_BY_ERROR]
    assert not missing, f"add {missing} to engine.grpc.status.STATUS_BY_ERROR"


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.FlowNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.VersionNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.IdempotencyConflict, grpc.StatusCode.ALREADY_EXISTS),
        (errors.NotReady, grpc.StatusCode.UNAVAILABLE),
        (errors.FlowUnavailable, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.DecisionFailed, grpc.StatusCode.INTERNAL),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (CaseNotFound, grpc.StatusCode.NOT_FOUND),
        (IllegalTransition, grpc.StatusCode.FAILED_PRECONDITION),
        (CaseStoreError, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_request_errors_map_to_their_status(cls, code):
    """The caller-facing errors get the status codes the contract documents."""
    assert status_for(_example(cls))[0] is code


@pytest.mark.parametrize("cls", ERROR_CLASSES)
def test_no_error_maps_to_unknown_or_ok(cls):
    """No engine error is reported as UNKNOWN or OK, and the message carries the error's code."""
    code, message, _ = status_for(_example(cls))
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)
    assert f"[{cls.code}]" in message


def test_a_subclass_not_in_the_table_uses_its_base():
    """An error class added later without an entry still gets its base class's code."""

    class NewFlowError(errors.FlowNotFound):
        code = "new"

    assert status_for(NewFlowError("x"))[0] is grpc.StatusCode.NOT_FOUND


def test_unexpected_exceptions_are_internal_and_do_not_leak_details():
    """A non-engine exception is INTERNAL and its text (maybe private) is not sent."""
    code, message, metadata = status_for(KeyError("secret-key"))
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message and metadata == ()


def test_invalid_input_names_every_field_in_message_and_metadata():
    """INVALID_ARGUMENT names every bad field in the message and as JSON trailing metadata."""
    error = errors.InvalidInput(
        [FieldError("age", "must be at least 0, got -5", "out_of_range"), FieldError("home", "is required", "required")]
    )
    code, message, metadata = status_for(error)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "age: must be at least 0" in message and "home: is required" in message
    assert metadata[0][0] == FIELD_ERRORS_KEY
    assert json.loads(metadata[0][1]) == [
        {"field": "age", "message": "must be at least 0, got -5", "code": "out_of_range"},
        {"field": "home", "message": "is required", "code": "required"},
    ]
    assert field_errors_from(metadata) == json.loads(metadata[0][1])
    metadata[0][1].encode("ascii")  # gRPC text metadata must be ASCII


def test_field_errors_metadata_is_ascii_for_unicode_fields():
    """A non-ASCII field name or message is escaped so the metadata stays valid."""
    _, _, metadata = status_for(errors.InvalidInput([FieldError("prénom", "trop long €", "too_long")]))
    metadata[0][1].encode("ascii")
    assert field_errors_from(metadata)[0]["field"] == "prénom"


def test_translate_errors_aborts_with_the_mapped_status():
    """A decorated method that raises ends the call with the table's code and the field metadata."""

    class Servicer:
        @translate_errors
        def Method(self, request, context):  # noqa: N802
            raise errors.InvalidInput([FieldError("flow", "is required", "required")])

        @translate_errors
        def Fine(self, request, context):  # noqa: N802
            return request

    context = FakeContext()
    with pytest.raises(AbortError) as caught:
        Servicer().Method(None, context)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors_from(context.trailing) == [{"field": "flow", "message": "is required", "code": "required"}]
    assert Servicer().Fine(7, FakeContext()) == 7


def test_a_broken_flow_is_named_with_its_first_problem_in_a_bounded_message():
    """FlowUnavailable names the flow and its first problem (file:line), and stays short however many problems."""
    problems = [Problem("policies/qa/1/flow.yaml", "x" * 5000, "expression_syntax", line=9)] * 200
    code, message, metadata = status_for(errors.FlowUnavailable("qa", problems))
    assert code is grpc.StatusCode.FAILED_PRECONDITION and metadata == ()
    assert "flow 'qa' is not loaded" in message and "policies/qa/1/flow.yaml:9" in message and "200 problems" in message
    assert len(message) < 1000
