"""Bearer tokens: random, stored only as SHA-256 digests in a private file, looked up by digest."""

from __future__ import annotations

import hashlib
import stat

import pytest

from engine.errors import PolicyError
from engine.tokens import MAX_TOKEN_CHARS, add_token, load_tokens, new_token, revoke_tokens, token_digest


def test_new_tokens_are_long_random_and_distinct():
    """A token is vdt_ + 43 URL-safe characters (256 random bits); 1,000 tokens are all different."""
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(t.startswith("vdt_") and len(t) == 47 for t in tokens)


def test_the_file_keeps_the_digest_never_the_token(tmp_path):
    """add_token returns the token once; the file holds its SHA-256 and the caller, and is mode 0600."""
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "lending-app")
    text = path.read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_token_names_its_caller_and_nothing_else_does(tmp_path):
    """The store maps each token to its caller; an unknown, empty or overlong token maps to nobody."""
    path = tmp_path / "tokens.yaml"
    lending = add_token(path, "lending-app")
    payments = add_token(path, "payments")
    second = add_token(path, "lending-app")
    store = load_tokens(path)
    assert len(store) == 3
    assert store.caller(lending) == "lending-app" and store.caller(second) == "lending-app"
    assert store.caller(payments) == "payments"
    assert store.caller(lending[:-1]) is None
    assert store.caller("") is None
    assert store.caller("x" * (MAX_TOKEN_CHARS + 1)) is None


def test_caller_names_that_yaml_would_retype_stay_strings(tmp_path):
    """Callers named 'true' or '0742' come back as those strings (YAML 1.1 would read a bool, an octal)."""
    path = tmp_path / "tokens.yaml"
    t1, t2 = add_token(path, "true"), add_token(path, "0742")
    store = load_tokens(path)
    assert (store.caller(t1), store.caller(t2)) == ("true", "0742")


def test_revoke_removes_every_token_of_a_caller(tmp_path):
    """After revoke, the caller's tokens are unknown; other callers' tokens still work."""
    path = tmp_path / "tokens.yaml"
    a1, a2, b = add_token(path, "a"), add_token(path, "a"), add_token(path, "b")
    assert revoke_tokens(path, "a") == 2
    store = load_tokens(path)
    assert store.caller(a1) is None and store.caller(a2) is None and store.caller(b) == "b"
    assert revoke_tokens(path, "a") == 0


def test_invalid_names_and_broken_files_are_refused(tmp_path):
    """A caller name with spaces is a ValueError; a file with a bad digest or extra key lists every problem."""
    with pytest.raises(ValueError, match="caller name"):
        add_token(tmp_path / "t.yaml", "two words")
    broken = tmp_path / "broken.yaml"
    broken.write_text('tokens:\n  - caller: "a"\n    sha256: nothex\n  - caller: "b"\n    sha256: "' + "0" * 64 + '"\n    token: oops\n')
    with pytest.raises(PolicyError) as err:
        load_tokens(broken)
    assert {p.code for p in err.value.problems} == {"tokens_digest", "tokens_schema"}
    assert {p.line for p in err.value.problems} == {2, 4}
    with pytest.raises(PolicyError, match="does not exist"):
        load_tokens(tmp_path / "missing.yaml")
