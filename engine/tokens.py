"""Bearer tokens: made at random, stored only as SHA-256 digests, looked up in one step.

A token is ``vdt_`` followed by 43 URL-safe characters: 32 bytes (256 bits) from ``secrets``.
The token file keeps, per token, the caller name, the SHA-256 hex digest of the token and when it
was added — never the token, which ``add_token`` returns once for the operator to hand over::

    tokens:
      - caller: lending-app
        sha256: "5f0c...e1"
        added: "2026-11-29T18:00:00Z"

Why plain SHA-256 and not a salted, slow password hash (scrypt, argon2): a salt and a work factor
protect low-entropy secrets that people choose from guessing; a 256-bit random token cannot be
guessed either way, and a slow hash would cost milliseconds of CPU on every call (OWASP
"Password Storage Cheat Sheet" scopes those to passwords; GitHub and PyPI store API tokens as fast
digests the same way). Someone who reads the file learns the caller names, not a usable token.
The look-up compares digests by dict key: timing reveals at most the digest of a guess, which does
not help to find a valid token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from engine.errors import PolicyError, Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = ["TOKEN_PREFIX", "TokenStore", "add_token", "load_tokens", "new_token", "revoke_tokens", "token_digest"]

TOKEN_PREFIX = "vdt_"
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 512  # longer "tokens" are refused before hashing (bounded cost per call)
_CALLER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/+-]{0,127}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh random token: ``vdt_`` + 32 random bytes, URL-safe base64 (47 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """SHA-256 of the token's UTF-8 bytes, lower-case hex (64 characters)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Token digests -> caller names, as loaded from a token file."""

    def __init__(self, callers_by_digest: Mapping[str, str]) -> None:
        self._by_digest = dict(callers_by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def caller(self, token: str) -> str | None:
        """The caller a presented token belongs to, or None when it is unknown (or absurdly long)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        return self._by_digest.get(token_digest(token))


def _entries(path: Path) -> list[dict[str, str]]:
    """The token file's entries, checked; every problem reported at once (PolicyError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), f"cannot read the token file: {exc}", "tokens_unreadable")]) from None
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        raise PolicyError([Problem(str(path), str(exc), "yaml_syntax", line=exc.line)]) from None
    data = doc.data if doc.data is not None else {"tokens": []}
    if not isinstance(data, dict) or set(data) != {"tokens"} or not isinstance(data["tokens"], list):
        raise PolicyError([Problem(str(path), "the token file is one key, 'tokens', holding a list", "tokens_schema", line=1)])
    problems: list[Problem] = []
    entries: list[dict[str, str]] = []
    for i, item in enumerate(data["tokens"]):
        line = doc.line_of(("tokens", i))
        if not isinstance(item, dict) or not {"caller", "sha256"} <= set(item) or set(item) - {"caller", "sha256", "added"}:
            problems.append(Problem(str(path), f"tokens[{i}]: needs caller and sha256 (and optionally added), nothing else", "tokens_schema", line=line))
            continue
        caller, digest = str(item["caller"]), str(item["sha256"])
        if not _CALLER.match(caller):
            problems.append(Problem(str(path), f"tokens[{i}]: caller {caller!r} is not a valid caller name", "tokens_caller", line=line))
        if not _DIGEST.match(digest):
            problems.append(Problem(str(path), f"tokens[{i}]: sha256 must be 64 lower-case hex digits", "tokens_digest", line=line))
        entries.append({"caller": caller, "sha256": digest, "added": str(item.get("added", ""))})
    if problems:
        raise PolicyError(problems)
    return entries


def load_tokens(path: Path) -> TokenStore:
    """The token store of the file at ``path`` (must exist); raises ``PolicyError`` naming every problem."""
    path = Path(path)
    if not path.exists():
        raise PolicyError([Problem(str(path), "the token file does not exist (create it with: verdict auth add-token NAME --file FILE)", "tokens_missing")])
    return TokenStore({e["sha256"]: e["caller"] for e in _entries(path)})


def _write(path: Path, entries: list[dict[str, str]]) -> None:
    """Replace the file atomically (temp file + rename), readable by its owner only (0600)."""
    lines = ["# verdict bearer tokens: SHA-256 of each token -> caller (docs/security.md). No token is stored here.", "tokens:"]
    for e in entries:
        lines += [f"  - caller: \"{e['caller']}\"", f"    sha256: \"{e['sha256']}\""]
        if e.get("added"):
            lines.append(f'    added: "{e["added"]}"')
    if not entries:
        lines[-1] = "tokens: []"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_token(path: Path, caller: str, *, now: dt.datetime | None = None) -> str:
    """Add a new token for ``caller`` to the file at ``path`` (created if missing); the token, once.

    Raises ``ValueError`` for an invalid caller name (letters, digits and ``._@:/+-``, at most 128,
    starting with a letter or digit) and ``PolicyError`` when the existing file is broken.
    """
    if not _CALLER.match(caller):
        raise ValueError(f"caller name {caller!r}: use letters, digits and ._@:/+- (at most 128, starting with a letter or digit)")
    path = Path(path)
    entries = _entries(path)
    token = new_token()
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries.append({"caller": caller, "sha256": token_digest(token), "added": when})
    _write(path, entries)
    return token


def revoke_tokens(path: Path, caller: str) -> int:
    """Remove every token of ``caller`` from the file; how many were removed."""
    path = Path(path)
    entries = _entries(path)
    kept = [e for e in entries if e["caller"] != caller]
    if len(kept) != len(entries):
        _write(path, kept)
    return len(entries) - len(kept)
