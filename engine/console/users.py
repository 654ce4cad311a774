"""The console's users file: names, roles and Argon2id password hashes.

``<users file>`` (default ``<root>/console/users.yaml``) holds one entry per user::

    users:
      ana: {role: analyst, hash: "$argon2id$v=19$m=65536,t=3,p=4$..."}

written by ``verdict console users add NAME --role ROLE`` (the password read from stdin, never an
argument). Hashes are Argon2id with argon2-cffi's defaults (RFC 9106's second recommended
parameter set, ~50 ms and 64 MiB per check on this machine's kind): a stolen file does not give the
passwords away. The file holds no password and is written with mode 0600.

Roles (closed set): ``analyst`` (reviews cases, searches decisions), ``policy_owner`` (proposes
releases, runs backtests), ``approver`` (approves or rejects others' proposals) and ``auditor``
(reads everything, changes nothing). Which role may use which page is ``engine.console.access``.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = ["ROLES", "User", "UserError", "Users", "hash_password"]

ROLES = ("analyst", "policy_owner", "approver", "auditor")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
MIN_PASSWORD = 12  # NIST SP 800-63B §5.1.1.2 asks at least 8; 12 for staff with access to decisions


class UserError(ValueError):
    """A bad user name, role, password or users file; the message names what is wrong."""


@dataclass(frozen=True)
class User:
    """A console user: name and role (the hash never leaves ``Users``)."""

    name: str
    role: str


def hash_password(password: str) -> str:
    """The Argon2id hash of `password` (PHC string format); raises UserError when it is too short."""
    from argon2 import PasswordHasher

    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")
    return PasswordHasher().hash(password)


@functools.cache
def _dummy() -> str:
    """A real hash of a random password, checked when the user does not exist: a wrong name costs as long as a wrong password."""
    import secrets

    from argon2 import PasswordHasher

    return PasswordHasher().hash(secrets.token_urlsafe(16))


class Users:
    """The users file: read on every check (so ``users add`` takes effect without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.is_file():
            return {}
        try:
            data = load_yaml(self.path.read_text(encoding="utf-8")).data
        except (OSError, UnicodeDecodeError, YamlSyntaxError) as exc:
            raise UserError(f"cannot read the users file {self.path}: {exc}") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise UserError(f"{self.path}: expected a mapping `users: {{NAME: {{role: ROLE, hash: HASH}}}}`")
        bad = [str(n) for n, u in users.items() if not isinstance(u, dict) or u.get("role") not in ROLES or not isinstance(u.get("hash"), str)]
        if bad:
            raise UserError(f"{self.path}: users with a missing or unknown role or hash: {', '.join(sorted(bad))}")
        return {str(n): {"role": str(u["role"]), "hash": str(u["hash"])} for n, u in users.items()}

    def list(self) -> list[User]:
        """Every user, by name."""
        return [User(n, u["role"]) for n, u in sorted(self._read().items())]

    def add(self, name: str, role: str, password: str) -> User:
        """Add or replace user `name` with `role`; raises UserError naming every bad argument."""
        problems = []
        if not _NAME.match(name):
            problems.append(f"user name {name!r} must be 1-32 of a-z 0-9 _ . - starting with a letter")
        if role not in ROLES:
            problems.append(f"role {role!r} is not one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            problems.append(f"a password has at least {MIN_PASSWORD} characters")
        if problems:
            raise UserError("; ".join(problems))
        users = self._read()
        users[name] = {"role": role, "hash": hash_password(password)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# verdict console users (docs/console.md); written by `verdict console users add`\n")
            yaml.safe_dump({"users": users}, fh, sort_keys=True)
        os.replace(tmp, self.path)
        return User(name, role)

    def check(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (the same cost for an unknown name)."""
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        entry = self._read().get(name)
        try:
            PasswordHasher().verify(entry["hash"] if entry else _dummy(), password)
        except (VerificationError, InvalidHashError):
            return None
        return User(name, entry["role"]) if entry else None
