"""Card numbers never leave the process, whatever field they arrive in; retries survive a restart
without a configured key; the log directory is private.

Card numbers (valid test PANs, grouped by every separator kind, full-width) are planted in every
field of both bundled flows, in valid and invalid requests, request ids, flow names, versions and
unknown fields, sent to a real ``verdict serve`` process and through the CLI (decide, client,
audit show/verify, replay, test). Then every file the server and the CLI wrote and everything
they printed is searched for a Luhn-valid 13-19 digit run (normalised): none may be found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.policy.documents import ROOT_DIRS

from .helpers import ROOT, ServeProcess, card_payments, credit_applications, request, verdict_command, wait_serving

pytestmark = pytest.mark.integration

PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "4000000000000000006"]


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) - 48 + 0xFF10) if c.isdigit() else c for c in text)


def grouped(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


# Every way a planted number is written: plain, each separator kind, full-width (digits and separators).
FORMS = [
    PANS[0],
    grouped(PANS[1], " "),
    grouped(PANS[0], "-"),
    grouped(PANS[3], "."),
    grouped(PANS[1], "/"),
    grouped(PANS[3], "\u00a0"),
    grouped(PANS[0], "\u2013"),
    fullwidth(PANS[2]),
    grouped(fullwidth(PANS[0]), "\uff0d"),
    grouped(fullwidth(PANS[1]), "\u3000"),
    PANS[4],
]

# --- the detector: independent of engine.runtime.pan, it sees what a PCI scanner would see ----------------

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})
_RUN = re.compile(r"[0-9](?:[ \-./]?[0-9])+")
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])(?:[0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32}|[0-9a-f]{16})(?![0-9A-Za-z])")


def luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
    return total % 10 == 0


def normalise(text: str) -> str:
    """JSON escapes decoded, full-width forms folded (NFKC), every dash a '-', engine ids blanked."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return _HEX_ID.sub("<id>", text)


def card_numbers_in(text: str) -> list[str]:
    """Luhn-valid runs of 13-19 digits, contiguous or grouped by single separators (whole groups);
    the fraction of a decimal number (``0.123…``) is not a card number."""
    found = []
    text = normalise(text)
    for m in _RUN.finditer(text):
        run = m.group(0)
        if re.fullmatch(r"[0-9]+\.[0-9]+", run):  # a decimal number: its integer part only
            run = run.split(".")[0]
        groups = re.findall(r"[0-9]+", run)
        found += [pan for pan in PANS if pan in "".join(groups)]  # a planted number, even among other digits
        for i in range(len(groups)):
            for j in range(i, len(groups)):
                digits = "".join(groups[i : j + 1])
                if 13 <= len(digits) <= 19 and luhn(digits):
                    found.append(digits)
    found += [pan for pan in PANS if pan in text]  # a planted number glued to letters
    return found


def files_under(*roots: Path) -> dict[str, str]:
    return {
        str(p): p.read_bytes().decode("utf-8", "replace") for root in roots for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_detector_finds_every_planted_form_and_skips_decimals():
    """The search used below finds each planted form and ignores decimals, ids and order numbers."""
    for form in FORMS:
        assert card_numbers_in(f'{{"x":"{form}"}}'), form
        assert card_numbers_in(json.dumps({"x": form})), form  # as \\u escapes
    assert luhn("3598054051399235") and luhn("4111111111111111")
    decimals_and_ids = '{"score":0.3598054051399235,"n":1234567890123456,"id":"ab4111111111111111cdef0123456789"}'
    assert card_numbers_in(decimals_and_ids) == []


# --- planting ----------------------------------------------------------------------------------

CARD = card_payments(1)[0]
CREDIT = credit_applications(1)[0]
FIELDS = {
    "card_payment": sorted(set(CARD) | {"card_number", "device_id", "ip_country", "cvv_match", "amount_avg_30d"}),
    "credit_application": sorted(set(CREDIT) | {"customer_id"}),
}
BASE = {"card_payment": CARD, "credit_application": CREDIT}
PIN = {"card_payment": {"version": "1"}, "credit_application": {}}  # CARD is a version 1 input (with the counters)


def planted_requests() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(flow, input, request fields) with a card number in every field, valid and invalid."""
    out: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    k = 0
    for flow, fields in FIELDS.items():
        for name in fields:
            for value in (FORMS[k % len(FORMS)], float(PANS[k % 4])):
                out.append((flow, {**BASE[flow], name: value}, {"request_id": f"rq-{FORMS[(k + 3) % len(FORMS)]}", **PIN[flow]}))
                k += 1
        out.append((flow, {**BASE[flow], FORMS[k % len(FORMS)]: "x"}, dict(PIN[flow])))  # as an unknown field's name
        out.append((flow, {**BASE[flow], "note": FORMS[(k + 1) % len(FORMS)]}, dict(PIN[flow])))  # in an unknown field
        out.append((flow, BASE[flow], {"request_id": FORMS[(k + 2) % len(FORMS)], **PIN[flow]}))  # valid, PAN as request id
        out.append((flow, BASE[flow], {"version": FORMS[(k + 4) % len(FORMS)]}))  # as a version
        k += 5
    out.append((FORMS[1], CARD, {}))  # as a flow name
    out.append(("card_payment", {**CARD, "customer_id": FORMS[5], "device_id": FORMS[8], "card_number": PANS[0]}, dict(PIN["card_payment"])))
    out.append(("credit_application", {**CREDIT, "customer_id": FORMS[9]}, {"request_id": FORMS[6]}))
    return out


def verdict(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERDICT_AUDIT_HASH_KEY"}
    return subprocess.run(
        [*verdict_command(), *args], capture_output=True, text=True, timeout=180, cwd=cwd, input=stdin, env=env
    )


def test_card_numbers_reach_no_file_log_line_error_or_cli_output(tmp_path, monkeypatch):
    """PANs planted in every field, request id, flow name, version and unknown field of both flows,
    through a real server and the CLI: no Luhn-valid 13-19 digit run in anything written or printed."""
    monkeypatch.delenv("VERDICT_AUDIT_HASH_KEY", raising=False)
    work, given = tmp_path / "work", tmp_path / "given"  # what the server and CLI write; what we feed them
    work.mkdir()
    given.mkdir()
    log_dir = work / "audit"
    printed: list[str] = []
    statuses: dict[str, int] = {}
    server = ServeProcess(work, "--audit", str(log_dir), "--log-level", "debug")
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            for flow, data, fields in planted_requests():
                try:
                    response = stub.Decide(request(flow, data, **fields), timeout=10)
                    printed.append(str(response))
                    statuses["OK"] = statuses.get("OK", 0) + 1
                except grpc.RpcError as exc:
                    printed.append(f"{exc.code()} {exc.details()} {exc.trailing_metadata()}")
                    statuses[exc.code().name] = statuses.get(exc.code().name, 0) + 1
        # the CLI against the running server and in-process
        inputs = given / "inputs"
        inputs.mkdir()
        for i, (flow, data, fields) in enumerate(planted_requests()[::7]):
            (inputs / f"{i}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            rid = fields.get("request_id", "")
            for args in (
                ("client", flow, "--input", str(inputs / f"{i}.json"), "--target", server.target, "--request-id", rid),
                ("decide", flow, "--input", str(inputs / f"{i}.json"), "--request-id", rid, "--root", str(ROOT)),
            ):
                done = verdict(*args, cwd=work)
                printed += [done.stdout, done.stderr]
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
    assert statuses.get("OK", 0) >= 6 and statuses.get("INVALID_ARGUMENT", 0) >= 20 and statuses.get("NOT_FOUND", 0) >= 3

    for args in (("audit", "show", str(log_dir)), ("audit", "verify", str(log_dir))):
        done = verdict(*args, cwd=work)
        assert done.returncode == 0, done.stderr
        printed += [done.stdout, done.stderr]
    shown = [json.loads(line) for line in printed[-4].splitlines()]
    assert len(shown) >= 6 and any("411111******1111" in json.dumps(r) for r in shown)  # masked, still there
    replayed = verdict(
        "replay", str(log_dir), "--flow", "card_payment", "--version", "1", "--json", str(work / "replay.json"),
        "--root", str(ROOT), "--no-progress", cwd=work,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    printed += [replayed.stdout, replayed.stderr]
    printed += policy_test_report(given, work)

    everything = {**files_under(work), **{f"printed[{i}]": text for i, text in enumerate(printed)}}
    assert any(str(log_dir) in name for name in everything)
    leaks = {name: card_numbers_in(text) for name, text in everything.items()}
    assert {name: (found, everything[name][:300]) for name, found in leaks.items() if found} == {}


def policy_test_report(given: Path, work: Path) -> list[str]:
    """`verdict test` on a copy of the root with a failing case that carries PANs in its name and input."""
    root = given / "root"
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, root / part)
    cases = root / "policies" / "card_payment" / "1" / "tests" / "decisions.yaml"
    case = {**CARD, "customer_id": FORMS[2], "card_number": PANS[0], "device_id": FORMS[7]}
    cases.write_text(
        cases.read_text(encoding="utf-8")
        + f"\n  - name: planted {FORMS[1]}\n    input: {json.dumps(case, ensure_ascii=False)}\n"
        + "    expect:\n      action: REVIEW\n      reasons: [CVV_MISMATCH]\n",
        encoding="utf-8",
    )
    done = verdict("test", "--root", str(root), "-v", cwd=work)
    assert done.returncode == 1 and "planted" in done.stdout, done.stdout + done.stderr
    return [done.stdout, done.stderr]


def test_non_card_digit_runs_are_kept(tmp_path, monkeypatch):
    """Order numbers that fail Luhn, sent as customer id and request id, are logged and echoed unchanged."""
    monkeypatch.delenv("VERDICT_AUDIT_HASH_KEY", raising=False)
    order = "1234567890123456"
    assert not luhn(order)
    (tmp_path / "in.json").write_text(json.dumps({**CARD, "customer_id": order}), encoding="utf-8")
    done = verdict("decide", "card_payment", "--version", "1", "--input", str(tmp_path / "in.json"), "--request-id", order, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["request_id"] == order


def test_retry_after_a_restart_is_answered_from_the_log_without_a_key_setting(tmp_path, monkeypatch):
    """No VERDICT_AUDIT_HASH_KEY, umask 0: the server keeps DIR/hash.key; after a restart of the real
    server process a retry gets the logged decision (not decided or logged again); every directory of
    the log is 0700 and every file 0600."""
    monkeypatch.delenv("VERDICT_AUDIT_HASH_KEY", raising=False)
    log_dir = tmp_path / "audit"
    old_umask = os.umask(0)
    try:
        answers = []
        for _ in range(2):  # start, decide, stop; then the same again
            server = ServeProcess(tmp_path, "--audit", str(log_dir))
            try:
                wait_serving(server.target)
                with grpc.insecure_channel(server.target) as channel:
                    stub = pb_grpc.DecisionServiceStub(channel)
                    answers.append(stub.Decide(request("card_payment", CARD, request_id="retry-1", version="1"), timeout=10))
                assert server.terminate_and_wait() == 0
            finally:
                server.kill()
    finally:
        os.umask(old_umask)
    assert answers[1].decision_id == answers[0].decision_id
    shown = verdict("audit", "show", str(log_dir), cwd=tmp_path)
    assert [json.loads(line)["request_id"] for line in shown.stdout.splitlines()].count("retry-1") == 1
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [log_dir, *log_dir.rglob("*")]}
    assert "hash.key" in modes and "segment-00000001.log" in modes
    assert modes == {name: (0o700 if (log_dir / name).is_dir() or name == "audit" else 0o600) for name in modes}
