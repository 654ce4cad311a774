"""The verdict command line: sub-commands registered, decide prints the service's JSON, exit codes."""

import io
import json

import pytest

import engine.runtime.service
from engine.cli import COMMANDS, build_parser, main

from .grpc_fakes import FakeDecider


@pytest.fixture
def fake_core(monkeypatch):
    """verdict decide loads a FakeDecider instead of the bundled policies."""
    core = FakeDecider()
    monkeypatch.setattr(engine.runtime.service, "load_decider", lambda root: core)
    return core


def _write(tmp_path, data):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_every_command_module_is_registered():
    """serve, decide and client are sub-commands, each from its own module's register()."""
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"serve", "decide", "client"} <= set(choices)
    assert all(hasattr(module, "register") for module in COMMANDS)


def test_no_command_is_a_usage_error(capsys):
    """verdict without a command exits 2 with a usage message."""
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_decide_prints_one_json_document_with_proto_names(tmp_path, capsys, fake_core):
    """decide prints the DecideResponse as JSON: proto field names, action by name, every field."""
    code = main(["decide", "credit_application", "--input", _write(tmp_path, {"age": 17}), "--request-id", "r7"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert doc["action"] == "DECLINE" and doc["request_id"] == "r7" and doc["flow"] == "credit_application"
    assert {"decision_id", "reasons", "scores", "revision", "models", "fired_rules", "eval_us", "route"} <= set(doc)
    assert doc["fired_rules"][0]["action"] == "DECLINE"
    assert fake_core.calls == [("credit_application", {"age": 17.0}, "", "r7")]  # numbers as on the wire


def test_decide_reads_stdin(monkeypatch, capsys, fake_core):
    """--input - reads the JSON document from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO('{"age": 40}'))
    assert main(["decide", "credit_application", "--input", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "APPROVE"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), (None, "cannot read")],
)
def test_decide_bad_input_file_exits_2_with_a_clear_message(tmp_path, capsys, fake_core, content, message):
    """Unreadable, non-JSON or non-object input exits 2 with the reason on stderr, nothing on stdout."""
    path = _write(tmp_path, content) if content is not None else str(tmp_path / "missing.json")
    assert main(["decide", "credit_application", "--input", path]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_decide_invalid_fields_exit_2_naming_each(tmp_path, capsys, fake_core):
    """Input the flow rejects exits 2 and names every bad field."""
    assert main(["decide", "credit_application", "--input", _write(tmp_path, {"age": "x", "home": True})]) == 2
    err = capsys.readouterr().err
    assert "age" in err and "home" in err


def test_decide_unknown_flow_exits_2(tmp_path, capsys, fake_core):
    """An unknown flow exits 2 and names it."""
    assert main(["decide", "nope", "--input", _write(tmp_path, {})]) == 2
    assert "nope" in capsys.readouterr().err


def test_decide_broken_policies_exit_1(tmp_path, capsys, monkeypatch):
    """Policies that fail to load exit 1 and list the problems."""
    from engine.errors import PolicyError, Problem

    def broken(root):
        raise PolicyError([Problem("rules/x.yaml", "unknown field 'pd'", "unknown_field", line=6, rule="R-1")])

    monkeypatch.setattr(engine.runtime.service, "load_decider", broken)
    assert main(["decide", "credit_application", "--input", _write(tmp_path, {})]) == 1
    err = capsys.readouterr().err
    assert "rules/x.yaml:6" in err and "R-1" in err


def test_serve_rejects_bad_settings_with_exit_2(capsys):
    """serve with an invalid port exits 2 before binding anything."""
    assert main(["serve", "--port", "99999"]) == 2
    assert "port" in capsys.readouterr().err


def test_client_unreachable_server_exits_1(tmp_path, capsys):
    """client against a closed port reports UNAVAILABLE and exits 1."""
    args = ["client", "credit_application", "--input", _write(tmp_path, {}), "--target", "127.0.0.1:1", "--timeout", "2"]
    assert main(args) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_lint_inside_a_broken_copy_checks_that_copy(tmp_path, monkeypatch, capsys):
    """`verdict lint` run inside a copy of the policies lints the copy (not the bundled root) and names it on stderr."""
    from .policy_roots import demo_root

    root = demo_root(tmp_path)
    rules = root / "rules/main.yaml"
    rules.write_text(rules.read_text().replace("age < 18", "age <<< 18"))
    monkeypatch.chdir(root)
    monkeypatch.delenv("VERDICT_ROOT", raising=False)
    assert main(["lint"]) == 1
    out, err = capsys.readouterr()
    assert "rules/main.yaml:" in out and "lint FAILED" in out
    assert f"verdict: policy root {root.resolve()} (the current directory)" in err


def test_verdict_root_beats_the_current_directory_and_keeps_json_stdout_parseable(tmp_path, monkeypatch, capsys):
    """With VERDICT_ROOT set, decide uses it; the root goes to stderr and stdout is one JSON document."""
    from .policy_roots import demo_root

    root = demo_root(tmp_path / "env")
    (tmp_path / "cwd" / "policies").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("VERDICT_ROOT", str(root))
    assert main(["decide", "demo", "--input", _write(tmp_path, {"amount": 5000, "age": 30, "income": 100})]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["action"] == "REVIEW"
    assert f"verdict: policy root {root.resolve()} (VERDICT_ROOT)" in err


def test_decide_on_a_broken_flow_names_its_problems_while_other_flows_decide(tmp_path, capsys):
    """A root with one broken flow: deciding it exits 1 naming file and line; the good flow still decides."""
    from .policy_roots import demo_root, write

    root = demo_root(tmp_path)
    write(root, "policies/bad/1/flow.yaml", "flow: bad\nversion: '1'\ninput: {fields: {x: {type: number}}}\nrulesets: [nope.rules]\ndefault: {action: APPROVE}\n")
    data = _write(tmp_path, {"amount": 10, "age": 30, "income": 100})
    assert main(["decide", "bad", "--root", str(root), "--input", data]) == 1
    assert "bad is not loaded" in capsys.readouterr().err
    assert main(["decide", "demo", "--root", str(root), "--input", data]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "APPROVE"
