"""Tests of released versions: verdict release writes a lock, and changed content is refused with the file named."""

from pathlib import Path

from engine.cli import main
from engine.policy.lint import lint
from engine.policy.loader import load
from engine.policy.release import lock_path, read_lock

from .policy_roots import demo_root, write

PROJECT = Path(__file__).resolve().parents[2]


def test_release_writes_a_lock_with_the_content_revision(tmp_path, capsys):
    """verdict release records the revision every decision of that version carries."""
    root = demo_root(tmp_path)
    assert main(["release", "demo", "1", "--root", str(root)]) == 0
    assert "released demo 1" in capsys.readouterr().out
    lock, problems = read_lock(lock_path(root, "demo", "1"), "lock")
    assert problems == [] and lock is not None
    flow = load(root).policies.flows["demo"].versions["1"]
    assert lock.revision == flow.revision
    assert set(lock.files) == {"policies/demo/1/flow.yaml", "rules/main.yaml"}
    assert main(["release", "demo", "1", "--root", str(root)]) == 0  # again: nothing to do
    assert "already released" in capsys.readouterr().out


def test_a_change_behind_a_released_version_is_refused_naming_the_file(tmp_path):
    """Editing a rule file a released version uses fails the load and lint, telling the owner to make a new version."""
    root = demo_root(tmp_path)
    assert main(["release", "demo", "1", "--root", str(root)]) == 0
    rules = root / "rules/main.yaml"
    original = rules.read_text()
    rules.write_text(original.replace("amount > 1000", "amount > 2000"))
    result = load(root)
    assert result.policies is None
    (problem,) = result.errors
    assert problem.code == "released_version_changed" and problem.path == "rules/main.yaml"
    assert "demo version 1 is released" in problem.message and "new version" in (problem.hint or "")
    assert not lint(root).ok
    rules.write_text(original)  # restoring the released content makes it loadable again
    assert load(root).policies is not None


def test_adding_tests_or_changing_routing_keeps_a_release_valid(tmp_path):
    """Tests and routing are not part of a version's content."""
    root = demo_root(tmp_path, versions=("1", "2"))
    assert main(["release", "demo", "1", "--root", str(root)]) == 0
    write(root, "policies/demo/1/tests/more.yaml", "cases:\n  - name: m\n    input: {amount: 1, age: 40, income: 3}\n    expect: {action: APPROVE}\n")
    write(root, "policies/demo/routing.yaml", 'live: "2"\n')
    assert load(root).policies is not None


def test_release_is_refused_without_passing_tests(tmp_path, capsys):
    """A version with a failing test, or with no test, is not released."""
    failing = demo_root(tmp_path / "failing", limit=9000)
    assert main(["release", "demo", "1", "--root", str(failing)]) == 1
    assert "needs passing tests" in capsys.readouterr().err
    untested = demo_root(tmp_path / "untested", tests=False)
    assert main(["release", "demo", "1", "--root", str(untested)]) == 1
    assert not lock_path(untested, "demo", "1").exists()


def test_a_damaged_lock_is_an_error(tmp_path):
    """A lock that is not what verdict release writes is refused."""
    root = demo_root(tmp_path)
    lock_path(root, "demo", "1").write_text("flow: demo\nversion: '1'\nrevision: abc\n")
    assert [p.code for p in load(root).errors] == ["release_lock_invalid"]


def test_a_lock_copied_with_a_version_directory_says_to_delete_it(tmp_path):
    """Copying a released version to start a new one brings its lock along: the error says to delete it."""
    root = demo_root(tmp_path, versions=("1", "2"))
    assert main(["release", "demo", "1", "--root", str(root)]) == 0
    copied = lock_path(root, "demo", "2")
    copied.write_text(lock_path(root, "demo", "1").read_text())
    (problem,) = load(root).errors
    assert (problem.code, problem.path) == ("release_lock_invalid", "policies/demo/2/release.lock")
    assert "the lock is for demo 1, not demo 2" in problem.message
    assert "delete policies/demo/2/release.lock" in (problem.hint or "")
    copied.unlink()
    assert load(root).policies is not None


def test_shipped_versions_are_released_and_unchanged():
    """Both versions of credit_application are released, and the bundled content matches their locks."""
    for version in ("1", "2"):
        lock, problems = read_lock(lock_path(PROJECT, "credit_application", version), "lock")
        assert problems == [] and lock is not None
    result = load(PROJECT)
    assert [p for p in result.problems if p.code == "released_version_changed"] == []
    versions = result.policies.flows["credit_application"].versions
    assert read_lock(lock_path(PROJECT, "credit_application", "2"), "lock")[0].revision == versions["2"].revision


def test_reissue_after_a_model_serving_fix_records_why(tmp_path, capsys):
    """`--reissue --reason` rewrites a released lock when only model files changed, keeping the reason and the old revision."""
    from .policy_roots import project_copy
    from .test_revision import _change_graph

    root = project_copy(tmp_path)
    old, _ = read_lock(lock_path(root, "credit_application", "1"), "lock")
    _change_graph(root)
    assert load(root).policies is None
    assert main(["release", "credit_application", "1", "--root", str(root), "--reissue"]) == 2  # no reason
    assert main(["release", "credit_application", "1", "--root", str(root), "--reissue", "--reason", "graph fix"]) == 0
    assert "model_artifacts/credit_default/1/model.onnx" in capsys.readouterr().out
    lock, problems = read_lock(lock_path(root, "credit_application", "1"), "lock")
    assert problems == [] and lock is not None and lock.released_at == old.released_at
    (entry,) = lock.reissued[len(old.reissued):]
    assert (entry.reason, entry.previous_revision) == ("graph fix", old.revision)
    assert "model_artifacts/credit_default/1/model.onnx" in entry.changed
    assert lock.revision == load(root).compiled[("credit_application", "1")].revision


def test_reissue_is_refused_when_a_rule_file_changed(tmp_path, capsys):
    """A policy change behind a released version cannot be re-issued: it needs a new version."""
    from .policy_roots import project_copy

    root = project_copy(tmp_path)
    rules = root / "rules/credit/eligibility.yaml"
    rules.write_text(rules.read_text() + "\n# edited\n")
    assert main(["release", "credit_application", "1", "--root", str(root), "--reissue", "--reason", "x"]) == 1
    assert "rules/credit/eligibility.yaml changed since the release" in capsys.readouterr().out


def test_a_changed_screening_list_under_a_released_version_is_refused(tmp_path):
    """The lock records a screening flow's list files; a list changed after the release fails the load naming the entity file."""
    from .policy_roots import project_copy

    root = project_copy(tmp_path)
    assert main(["release", "customer_onboarding", "1", "--root", str(root)]) == 0
    lock, _ = read_lock(lock_path(root, "customer_onboarding", "1"), "lock")
    assert lock is not None
    listed = {p for p in lock.files if p.startswith("lists/")}
    assert {"lists/sanctions_synthetic/1/list.yaml", "lists/sanctions_synthetic/1/entities.jsonl"} <= listed
    entities = root / "lists/sanctions_synthetic/1/entities.jsonl"
    original = entities.read_text()
    entities.write_text(original.replace("Ahmad Mansour", "Ahmad Mansur", 1))
    result = load(root)
    assert result.policies is None
    (problem,) = result.errors
    assert problem.code == "released_version_changed" and problem.path == "lists/sanctions_synthetic/1/entities.jsonl"
    assert "customer_onboarding version 1 is released" in problem.message
    entities.write_text(original)  # the released list again: loadable
    assert load(root).policies is not None
