"""engine.policy.yamlio composes with libyaml when PyYAML has it, with the same data, lines and errors as its Python parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.policy import yamlio
from engine.policy.yamlio import YamlSyntaxError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("policies/**/*.yaml"), *ROOT.glob("rules/**/*.yaml")])



def test_libyaml_is_used() -> None:
    """The installed PyYAML has libyaml, so loading takes the fast path (PyYAML's Linux wheels bundle it)."""
    assert yamlio._FAST_COMPOSER is not None


def _python_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlio, "_FAST_COMPOSER", None)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_bundled_files_load_the_same_with_both_parsers(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bundled policy and rule file gives equal data and an equal line map through libyaml and Python."""
    text = path.read_text()
    fast = load_yaml(text)
    _python_only(monkeypatch)
    slow = load_yaml(text)
    assert fast.data == slow.data and fast.lines == slow.lines


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("branch: 0742\n", "yaml_number"),  # a plain scalar: "" style in libyaml must still be checked
        ("a: 1\na: 2\n", "duplicate_key"),
        ("a: !!python/name:os.system x\n", "yaml_tag"),
        ("a: [1, 2\n", "yaml_syntax"),
        ("a: b: c\n", "yaml_syntax"),
    ],
)
def test_errors_are_the_same_with_both_parsers(text: str, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Number traps, duplicate keys, tags and syntax errors give the same code, line and message either way."""
    with pytest.raises(YamlSyntaxError) as fast:
        load_yaml(text)
    _python_only(monkeypatch)
    with pytest.raises(YamlSyntaxError) as slow:
        load_yaml(text)
    assert fast.value.code == slow.value.code == code
    assert (str(fast.value), fast.value.line, fast.value.hint) == (str(slow.value), slow.value.line, slow.value.hint)


def test_quoted_number_is_text() -> None:
    """A quoted '0742' stays the text '0742' (only plain scalars are number traps)."""
    assert load_yaml("branch: '0742'\n").data == {"branch": "0742"}
