"""Tests of safe hot reload: only states that load, compile and pass their tests are swapped in."""

import os
import signal
import threading
import time
from pathlib import Path

from engine.policy.loader import load, load_policies
from engine.runtime.reload import Reloader, fingerprint
from engine.runtime.service import Decider

from .policy_roots import RULES, demo_root, project_copy

BIG = {"amount": 5000, "age": 30, "income": 100}


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds (a deadline for liveness, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_valid_change_is_activated(tmp_path):
    """A rule change whose tests pass is swapped in; decisions carry the new revision."""
    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider)
    before = decider.decide("demo", BIG).revision
    (root / "rules/main.yaml").write_text(RULES.format(limit=2000))
    status = reloader.reload()
    assert status.ok and status.tests_run == 6 and status.tests_failed == 0
    after = decider.decide("demo", BIG)
    assert after.revision != before
    assert decider.policies.revision == status.revision == status.serving
    assert decider.metrics.get("reloads", result="ok", trigger="request") == 1


def test_a_broken_file_is_refused_and_the_old_state_serves(tmp_path):
    """Garbage appended to a rule file is refused with file and line; the last good state keeps serving."""
    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider)
    good = decider.policies.revision
    with (root / "rules/main.yaml").open("a") as f:
        f.write("  - id: R9\n    when: amount >>> 3\n    action: DECLINE\n    reason: BIG\n")
    status = reloader.reload("watch")
    assert not status.ok and status.serving == good and decider.policies.revision == good
    (problem,) = status.problems
    assert (problem.path, problem.line, problem.rule, problem.code) == ("rules/main.yaml", 23, "R9", "expression_syntax")
    assert status.message.startswith("refused for demo (keeps its last good version): rules/main.yaml:23: [expression_syntax]")
    assert decider.decide("demo", BIG).revision
    assert decider.metrics.get("reloads", result="refused", trigger="watch") == 1
    assert decider.metrics.get("reload_ok") == 0


def test_a_state_whose_policy_tests_fail_is_refused(tmp_path):
    """A change that compiles but breaks a policy test never serves."""
    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    good = decider.policies.revision
    (root / "rules/main.yaml").write_text(RULES.format(limit=9000))
    status = Reloader(root, decider).reload()
    assert not status.ok and status.tests_failed == 1 and status.revision != good
    assert decider.policies.revision == good
    assert "big amount goes to review" in status.failures[0] and "policies/demo/1/tests/cases.yaml:5" in status.failures[0]
    assert decider.decide("demo", BIG).action.name == "REVIEW"


def test_a_tampered_model_file_is_refused_while_the_old_state_serves(tmp_path):
    """Flipping a byte of an ONNX file fails its sha256 check; the reload is refused with the file named."""
    root = project_copy(tmp_path)
    decider = Decider(load_policies(root))
    good = decider.policies.revision
    model = root / "model_artifacts/credit_default/1/model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    status = Reloader(root, decider).reload()
    assert not status.ok and decider.policies.revision == good
    assert any(p.path.startswith("model_artifacts/credit_default/1") and "sha256" in p.message for p in status.problems)
    application = {"seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
                   "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846}
    assert decider.decide("credit_application", application).action.name == "APPROVE"


def test_the_watcher_picks_up_a_change_by_itself(tmp_path):
    """With the watcher running, a saved change is activated without any signal or call."""
    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider, interval=0.05)
    reloader.start()
    try:
        assert wait_for(lambda: reloader.last is not None)  # the initial reload, trigger "start"
        assert reloader.last.ok and reloader.last.trigger == "start" and reloader.last.tests_run == 6
        before = decider.policies.revision
        assert reloader.check() is None  # nothing changed yet
        (root / "rules/main.yaml").write_text(RULES.format(limit=2000))
        assert wait_for(lambda: decider.policies.revision != before)
        assert reloader.last is not None and reloader.last.ok and reloader.last.trigger == "watch"
    finally:
        reloader.stop()


def test_sighup_reloads(tmp_path):
    """SIGHUP asks the watcher thread to reload, even with polling off."""
    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider, interval=0)
    previous = signal.getsignal(signal.SIGHUP)
    reloader.install_sighup()
    reloader.start(initial=False)
    try:
        (root / "rules/main.yaml").write_text(RULES.format(limit=2000))
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: reloader.last is not None)
        assert reloader.last.ok and reloader.last.trigger == "sighup"
    finally:
        reloader.stop()
        signal.signal(signal.SIGHUP, previous)


def test_fingerprint_sees_content_changes(tmp_path):
    """The fingerprint changes when a watched file is rewritten, added or removed."""
    root = demo_root(tmp_path)
    first = fingerprint(root)
    (root / "rules/extra.yaml").write_text("ruleset: x\n")
    second = fingerprint(root)
    (root / "rules/extra.yaml").unlink()
    assert len({first, second}) == 2 and fingerprint(root) == first


def _revision_of(tmp: Path, limit: int) -> str:
    return load(demo_root(tmp, limit=limit)).policies.flows["demo"].versions["1"].revision


def test_reload_storm_under_concurrent_load(tmp_path):
    """Threads decide nonstop while files flip between good and broken states: 0 failures, 0 broken decisions."""
    root = demo_root(tmp_path / "live")
    good = {_revision_of(tmp_path / "a", 1000), _revision_of(tmp_path / "b", 2000)}
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider)
    rules = root / "rules/main.yaml"
    flow = root / "policies/demo/1/flow.yaml"
    flow_text = flow.read_text()
    changes = [
        lambda: rules.write_text(RULES.format(limit=2000)),  # good
        lambda: rules.write_text(RULES.format(limit=1000) + "garbage: [unclosed\n"),  # YAML error
        lambda: rules.write_text(RULES.format(limit=1000)),  # good
        lambda: rules.write_text(RULES.format(limit=9000)),  # compiles, fails a policy test
        lambda: rules.write_text(RULES.format(limit=2000)),  # good
        lambda: flow.write_text(flow_text.replace("max: 120", "max: 120, wrong: 1")),  # schema error
        lambda: flow.write_text(flow_text),  # good again
        lambda: rules.write_text(RULES.format(limit=1000).replace("age < 18", "agee < 18")),  # unknown field
        lambda: rules.write_text(RULES.format(limit=1000)),  # good
    ]
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[BaseException] = []
    counts = [0] * 4

    def client(n: int) -> None:
        inputs = [BIG, {"amount": 10, "age": 16, "income": 1}, {"amount": 1500, "age": 40}]
        while not stop.is_set():
            try:
                d = decider.decide("demo", inputs[counts[n] % 3])
                seen.add(d.revision)
                counts[n] += 1
            except BaseException as exc:  # noqa: BLE001 - any failure is what this test counts
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    outcomes = []
    try:
        for _round in range(3):
            for change in changes:
                change()
                outcomes.append(reloader.reload("watch").ok)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert sum(counts) > 100
    assert outcomes == [True, False, True, False, True, False, True, False, True] * 3
    assert seen <= good and len(seen) == 2


CASE = Path(__file__).resolve().parents[1] / "data" / "deep_expression" / "root"  # case deep-expression-loader-crash (ORIGIN.txt there)


def test_a_crashing_check_is_a_failed_reload_everywhere(tmp_path, monkeypatch, capsys):
    """A loader that raises: nothing is swapped, and status (FAILED, exit 1), metrics and log all say the reload failed."""
    import engine.policy.activation
    from engine.commands.status import failed, format_status
    from engine.grpc.policy_status import status_to_response

    root = demo_root(tmp_path)
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider)
    assert reloader.reload("start").ok
    good = decider.policies.revision

    def crash(root, custom_lists=None):
        raise SyntaxError("too many nested parentheses")

    monkeypatch.setattr(engine.policy.activation, "load", crash)
    status = reloader.reload("watch")
    assert not status.ok and status.result == "error" and status.serving == good == decider.policies.revision
    assert [p.code for p in status.problems] == ["reload_crashed"] and "SyntaxError" in status.problems[0].message
    assert decider.metrics.get("reload_ok") == 0 and decider.metrics.get("reloads", result="error", trigger="watch") == 1
    assert "reload_crashed" in capsys.readouterr().out
    response = status_to_response(decider.policies, decider.metrics.snapshot(), reloader)
    text = format_status(response)
    assert "last reload (watch, " in text and "): FAILED: crashed, nothing changed" in text and "OK" not in text
    assert failed(response)


def test_hot_reload_onto_the_deep_expression_case_is_never_reported_ok_unless_it_decides_right(tmp_path):
    """The 110-term sum of the case: either it compiles and decides REVIEW (total 110), or the reload fails visibly and the old state serves."""
    import shutil

    from engine.commands.status import failed
    from engine.grpc.policy_status import status_to_response

    root = tmp_path / "root"
    shutil.copytree(CASE / "policies", root / "policies")
    shutil.copytree(CASE / "rules", root / "rules")
    flow = root / "policies/qa/1/flow.yaml"
    saved = flow.read_text()
    flow.write_text("\n".join("  total: x + x" if line.startswith("  total:") else line for line in saved.splitlines()) + "\n")
    decider = Decider(load_policies(root))
    reloader = Reloader(root, decider)
    good = decider.policies.revision
    flow.write_text(saved)
    status = reloader.reload("watch")
    response = status_to_response(decider.policies, decider.metrics.snapshot(), reloader)
    if status.ok:
        decision = decider.decide("qa", {"x": 1})
        assert (decision.outcome.action.name, [r.id for r in decision.outcome.fired]) == ("REVIEW", ["BIG"])
        assert decision.outcome.features["total"] == 110
        assert not failed(response)
    else:
        assert decider.policies.revision == good and decider.metrics.get("reload_ok") == 0
        assert failed(response) and response.last_reload.result in ("refused", "error")
        assert decider.decide("qa", {"x": 1}).outcome.action.name == "APPROVE"  # the old 2-term sum still serves
