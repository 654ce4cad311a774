"""The decision log's hash key file: created once, kept, private.

Keyed hashes (``sensitive: hash``) and request fingerprints (idempotency) need the same key after
a restart, or a retry after a restart is decided and logged a second time. When
``VERDICT_AUDIT_HASH_KEY`` is not set, ``verdict serve`` keeps a key in ``DIR/hash.key``:

- created once from 32 bytes of ``os.urandom`` (the kernel CSPRNG), written as 64 hex digits and a
  newline to a temporary file (mode 0600), fsynced, then ``link``ed to ``hash.key``, which fails if
  the name exists (O_EXCL semantics): two processes starting together (``--workers N``) end up with
  the same key, and no reader ever sees a half-written key;
- read on every later start; a key shorter than ``MIN_KEY_BYTES`` is refused (``AuditError``);
- mode 0600 (only the server's user); wider permissions are tightened at start and logged.

Nothing derived from the key is stored besides ``key_id`` (the first 16 hex digits of a SHA-256
of a prefix and the key), which cannot be reversed for a 32-byte random key.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import structlog

from engine.audit.errors import AuditError
from engine.runtime.privacy import HashKey
from engine.settings import MIN_HASH_KEY_BYTES

__all__ = ["KEY_FILE", "MIN_KEY_BYTES", "load_or_create_key"]

KEY_FILE = "hash.key"
MIN_KEY_BYTES = MIN_HASH_KEY_BYTES  # 256 bits, the HMAC-SHA256 output size (RFC 2104 §3: at least L bytes)
_log = structlog.get_logger("verdict.audit")


def _read(path: Path) -> HashKey:
    try:
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        raise AuditError(f"{path}: not a hash key (expected hex digits); restore it or remove it with the log") from None
    except OSError as exc:
        raise AuditError(f"cannot read the hash key {path}: {exc.strerror or exc}") from None
    if len(secret) < MIN_KEY_BYTES:
        raise AuditError(f"{path}: the hash key has {len(secret)} bytes; at least {MIN_KEY_BYTES} are required")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        _log.warning("audit_hash_key_permissions_tightened", path=str(path), was=oct(mode))
    return HashKey(secret)


def load_or_create_key(directory: Path) -> tuple[HashKey, bool]:
    """The key kept in ``directory/hash.key`` (created when missing) and whether it was created.

    ``directory`` must exist. Raises AuditError when the file is unreadable or too short.
    """
    path = directory / KEY_FILE
    if path.exists():
        return _read(path), False
    tmp = directory / f".{KEY_FILE}.{os.getpid()}.{os.urandom(6).hex()}.tmp"  # unique per caller
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(MIN_KEY_BYTES).hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    created = True
    try:
        os.link(tmp, path)  # atomic, and fails if another process made the key first
    except FileExistsError:
        created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return _read(path), created
