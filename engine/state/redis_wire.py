"""The Redis store's one connection (engine.state.redis_store): Lua scripts by ``EVALSHA``, in order,
with deferred commands whose replies are read before the next command's.

``Wire.call`` is the one round trip a decision waits on; ``Wire.defer`` sends a command (an
approved decision's append, a snapshot's compaction) without waiting, its reply read (and a
failure logged as ``state_deferred_failed``, counted in ``failures``) before the next command.
Scripts are loaded with ``SCRIPT LOAD`` once and re-sent when a restarted Redis answers NOSCRIPT.
A broken connection is dropped (the next command opens another); replies owed on it are counted
as ``unconfirmed``: those commands may or may not have run.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import structlog

__all__ = ["Wire", "pack"]

_log = structlog.get_logger("verdict.state")


class Wire:
    """One connection; commands go out in order, and a deferred command's reply is read before the next command's.

    ``failures`` counts deferred commands that failed (``append``, ``compact``) and those whose
    reply was lost with the connection (``unconfirmed``).
    """

    def __init__(self, client: Any) -> None:
        import redis

        self._client = client
        self._conn: Any = None
        self._owed: deque[tuple[str, str, list[str], list[Any]]] = deque()
        self._shas: dict[str, str] = {}
        self._noscript = redis.exceptions.NoScriptError
        self._refused = redis.ResponseError
        self._down = (redis.ConnectionError, redis.TimeoutError)
        self.failures: Counter[str] = Counter()

    def call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` and return its reply (one round trip once the deferred replies are read)."""
        self.settle()
        self._send(script, keys, args)
        try:
            return self._read()
        except self._noscript:  # a restarted Redis forgot the script: load it, run it again
            self._shas.pop(script, None)
            self._send(script, keys, args)
            return self._read()

    def defer(self, what: str, script: str, keys: list[str], args: list[Any]) -> None:
        """Send ``script`` now; its reply is read (and a failure logged) before the next command's."""
        self._send(script, keys, args)
        self._owed.append((what, script, keys, args))

    def settle(self) -> None:
        """Read the replies owed by deferred commands; run again those a restarted Redis did not know."""
        again: list[tuple[str, str, list[str], list[Any]]] = []
        while self._owed:
            owed = self._owed.popleft()
            try:
                reply = self._read()
            except self._noscript:
                self._shas.pop(owed[1], None)
                again.append(owed)
                continue
            except self._refused as exc:
                self.failures[owed[0]] += 1
                _log.warning("state_deferred_failed", command=owed[0], error=str(exc))
                continue
            if owed[0] == "compact" and reply == 0:
                self.failures["compact_skipped"] += 1  # another reader folded first: nothing lost
        for what, script, keys, args in again:
            try:
                self.call(script, keys, args)
            except self._refused as exc:
                self.failures[what] += 1
                _log.warning("state_deferred_failed", command=what, error=str(exc))

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._client.connection_pool.make_connection()  # its own: never shared with the pool's users
        return self._conn

    def _send(self, script: str, keys: list[str], args: list[Any]) -> None:
        conn = self._connection()
        try:
            sha = self._shas.get(script)
            if sha is None:
                self.settle_before_load()
                conn.send_command("SCRIPT", "LOAD", script)
                sha = self._shas[script] = conn.read_response().decode()
            conn.send_packed_command([pack(["EVALSHA", sha, len(keys), *keys, *args])], check_health=False)
        except self._down:
            self.broken()
            raise

    def settle_before_load(self) -> None:
        """A ``SCRIPT LOAD`` is read at once: the replies owed before it come first."""
        if self._owed:
            self.settle()

    def _read(self) -> Any:
        try:
            return self._connection().read_response()
        except self._down:
            self.broken()
            raise

    def broken(self) -> None:
        """Drop the connection (the next command opens another); owed replies are lost with it."""
        if self._owed:
            self.failures["unconfirmed"] += len(self._owed)
            _log.warning("state_deferred_unconfirmed", commands=[o[0] for o in self._owed],
                         detail="the connection broke before their replies: they may or may not have run")
            self._owed.clear()
        if self._conn is not None:
            self._conn.disconnect()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*self._down):
                self.settle()
            self._conn.disconnect()
            self._conn = None


def pack(args: Sequence[Any]) -> bytes:
    """A command in RESP (https://redis.io/docs/latest/develop/reference/protocol-spec/): fewer Python
    calls than redis-py's packer, which weighed more than the round trip in a profile."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)
