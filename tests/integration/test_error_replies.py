"""Bad requests of any size get INVALID_ARGUMENT with a reply that fits a default client's limits.

Origin: the case ``grpc-field-errors-trailer-overflow`` (its probe sent credit applications with
20 to 150 unknown fields; from 80 on a default client got RESOURCE_EXHAUSTED, because the status
message and the ``verdict-field-errors`` trailer outgrew its 8 KiB metadata limit, grpc/grpc#37852).
"""

from __future__ import annotations

import grpc
import pytest

from engine.grpc.status import field_errors_from, omitted_field_errors
from engine.limits import MAX_FIELD_ERRORS, MAX_INPUT_FIELDS, MAX_REQUEST_ID_CHARS

from .helpers import request

BASE = {"seniority": 1, "home": "rent", "time": 60, "age": 22, "marital": "single", "records": True,
        "job": "partime", "expenses": 60, "income": 90, "assets": 0, "debt": 0, "amount": 1400, "price": 1500}
#: Well under a default client's 8 KiB soft metadata limit (status message and trailers together).
REPLY_BUDGET = 6 * 1024


def _error(stub, message) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Decide(message, timeout=10)
    return info.value


def _reply_bytes(error: grpc.RpcError) -> int:
    trailers = sum(len(k) + len(v if isinstance(v, bytes) else v.encode()) for k, v in error.trailing_metadata() or ())
    return len((error.details() or "").encode()) + trailers


def _unknown(n: int, width: int = 3) -> dict:
    inp = dict(BASE)
    inp.update({f"application_attribute_{i:0{width}d}": 1 for i in range(n)})
    return inp


@pytest.mark.parametrize("n", [20, 40, 60, 80, 100, 150])
def test_probe_every_unknown_field_count_is_invalid_argument(stub, n):
    """The case's probe: N unknown fields, ten calls each, always INVALID_ARGUMENT with the first few listed and the rest counted."""
    message = request("credit_application", _unknown(n))
    for _ in range(10):
        error = _error(stub, message)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        listed = field_errors_from(error.trailing_metadata())
        assert [e["field"] for e in listed] == [f"application_attribute_{i:03d}" for i in range(min(n, MAX_FIELD_ERRORS))]
        assert len(listed) + omitted_field_errors(error.trailing_metadata()) == n
        assert _reply_bytes(error) <= REPLY_BUDGET
    if n > MAX_FIELD_ERRORS:
        assert error.details().endswith(f"and {n - MAX_FIELD_ERRORS} more")


@pytest.mark.parametrize(
    ("what", "inp", "fields"),
    [
        ("255 unknown names of 230 characters", {("amount" + "y" * 220 + f"{i:04d}"): 1 for i in range(255)}, None),
        ("too many fields", _unknown(MAX_INPUT_FIELDS + 1, 4), ["input"]),
        ("long non-ASCII names", {("é" * 500 + str(i)): "x" * 1000 for i in range(30)}, None),
        ("long bad values", dict(BASE, home="h" * 30_000, job="j" * 30_000), ["home", "job"]),
    ],
)
def test_worst_bad_inputs_within_the_size_limit_fit_the_reply(stub, what, inp, fields):
    """Requests near the 64 KiB limit, built to make the reply as large as possible, still get a small INVALID_ARGUMENT."""
    error = _error(stub, request("credit_application", inp))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (what, error.details())
    assert _reply_bytes(error) <= REPLY_BUDGET, what
    listed = field_errors_from(error.trailing_metadata())
    assert 1 <= len(listed) <= MAX_FIELD_ERRORS
    if fields is not None:
        assert [e["field"] for e in listed] == fields


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"request_id": "r" * 60_000}, ["request_id"]),
        ({"flow": "f" * 60_000}, ["flow"]),
        ({"flow": "credit_application", "version": "v" * 40_000, "request_id": "r" * 20_000}, ["version", "request_id"]),
    ],
)
def test_long_names_of_the_call_are_invalid_argument(stub, fields, named):
    """A 60 KB request_id, flow or version is refused with INVALID_ARGUMENT naming it and its limit, in a small reply."""
    message = request(fields.pop("flow", "credit_application"), BASE, **fields)
    error = _error(stub, message)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in field_errors_from(error.trailing_metadata())] == named
    assert _reply_bytes(error) <= REPLY_BUDGET
    if "request_id" in named:
        assert f"at most {MAX_REQUEST_ID_CHARS} characters" in error.details()


def test_server_keeps_serving_after_the_worst_requests(stub):
    """After a burst of oversized error replies the same channel still gets decisions."""
    for n in (150, 300):
        _error(stub, request("credit_application", _unknown(n)))
    assert stub.Decide(request("credit_application", BASE), timeout=10).action


@pytest.mark.parametrize(
    "method", ["/verdict.v1.DecisionService/ListFlows", "/verdict.v1.PolicyService/GetStatus", "/verdict.v1.DecisionService/Decide"]
)
@pytest.mark.parametrize("payload", [b"\x0a\x05ab", b"\xff\xff\xff", b"\x08"])
def test_malformed_bytes_are_invalid_argument_on_every_method(channel, stub, method, payload):
    """Bytes that are not the method's request are INVALID_ARGUMENT naming 'request' (not INTERNAL), and serving goes on."""
    raw = channel.unary_unary(method)  # no serializers: raw bytes
    with pytest.raises(grpc.RpcError) as caught:
        raw(payload, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert [e["field"] for e in field_errors_from(caught.value.trailing_metadata())] == ["request"]
    assert stub.Decide(request("credit_application", BASE), timeout=10).action


def test_cli_client_prints_the_listed_errors_and_the_count_of_the_rest(target, tmp_path, capsys):
    """verdict client against a real server: exit 2, the listed field errors, then 'and N more'."""
    import json

    from engine.cli import main

    path = tmp_path / "app.json"
    path.write_text(json.dumps(_unknown(40)))
    assert main(["client", "credit_application", "--input", str(path), "--target", target]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("verdict: INVALID_ARGUMENT: ")
    assert len([line for line in err if "[unknown_field]" in line]) == MAX_FIELD_ERRORS
    assert err[-1].endswith(f"  and {40 - MAX_FIELD_ERRORS} more")


def test_cli_decide_prints_the_count_of_the_rest(tmp_path, capsys):
    """verdict decide in-process: exit 2, the listed field errors, then 'and N more'."""
    import json

    from engine.cli import main

    from .helpers import ROOT

    path = tmp_path / "app.json"
    path.write_text(json.dumps(_unknown(40)))
    assert main(["decide", "credit_application", "--input", str(path), "--root", str(ROOT)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if "[unknown_field]" in line]) == MAX_FIELD_ERRORS
    assert err[-1] == f"  and {40 - MAX_FIELD_ERRORS} more"
