"""Stateful features in Redis (or Valkey), shared by several servers: ``verdict serve --state redis://HOST:PORT/DB``.

Each (stream, key) series is one Redis string ``verdict:state:<signature>:<hashed key>`` holding
``<version>|<series JSON>`` (engine.state.series), with a Redis expiry of its stream's retention (the
TTL of idle keys, kept by Redis itself). A decision is two round trips (three with a linked feature: a second ``MGET`` of the reverse
series its first read names):

1. ``MGET`` of its keys (one pipelined call, whatever the number of features);
2. one Lua script (``EVALSHA``) that checks every key still has the version read and then writes the
   changed series with their expiry, atomically (Redis runs a script alone).

When another server wrote one of the keys in between, the script writes nothing and the decision's
read, evaluation and record run again after a short random pause (optimistic concurrency; at most
``MAX_ATTEMPTS``, then ``StateConflict``: gRPC ABORTED, nothing recorded), so servers sharing one
Redis count exactly. Within one process the transactions take turns (one lock), so only other
processes can conflict: retrying threads of one process would otherwise starve each other on a hot key. Redis's own durability applies (``appendonly yes`` with
``appendfsync everysec`` loses at most a second of writes on a power loss; size and persist Redis as
docs/behaviour.md says).

Traps: a ``redis.Redis`` client is a connection pool, safe across threads but not across ``fork``:
open the store in each worker after forking (``verdict serve`` does). The script is loaded with
``SCRIPT LOAD`` and re-sent when a restarted Redis answers NOSCRIPT (redis-py's ``Script`` does this).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from engine.errors import StateConflict, StateUnavailable
from engine.state.plan import Slot
from engine.state.series import Series
from engine.state.store import Expand, Step

__all__ = ["MAX_ATTEMPTS", "RedisStore"]

T = TypeVar("T")
MAX_ATTEMPTS = 32  # tries of one decision when other servers keep writing the same keys
BACKOFF_SECONDS = 0.002  # the most a retry waits before it reads again (uniformly random below it)
PREFIX = "verdict:state:"
DEFAULT_RETENTION = 97 * 86400.0  # the longest window (90 days) plus the longest lateness (7 days)

# KEYS: the series keys; ARGV: n, then n expected versions, then per changed key (index, data, ttl ms).
_CAS = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  local version = '0'
  if cur then version = string.match(cur, '^(%d+)|') end
  if version ~= ARGV[1 + i] then return 0 end
end
local j = 2 + n
while j <= #ARGV do
  local i = tonumber(ARGV[j])
  local expected = tonumber(ARGV[1 + i])
  if ARGV[j + 1] == '' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], tostring(expected + 1) .. '|' .. ARGV[j + 1], 'PX', ARGV[j + 2])
  end
  j = j + 3
end
return 1
"""


class RedisStore:
    """Series in Redis; see the module docstring."""

    def __init__(self, url: str, *, client: Any = None, lazy: bool = False) -> None:
        """Connect to ``url`` and read (or make) the deployment's salt.

        Raises StateUnavailable when Redis does not answer, unless ``lazy`` (a server: it starts and
        serves without Redis, its stateful flows taking their ``state`` fallback, and reads the salt
        at the first transaction that reaches Redis); ``unreachable`` then says why.
        """
        from engine.extras import require

        require("redis", "a Redis state store (--state redis://...)")
        import redis

        self.url = url
        self._redis = client if client is not None else redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._down = (redis.ConnectionError, redis.TimeoutError)  # what StateUnavailable stands for
        self._cas = self._redis.register_script(_CAS)
        self.retention: dict[str, float] = {}
        self._turn = threading.Lock()  # one transaction of this process at a time (see the module docstring)
        self._salt: bytes | None = None
        self.unreachable = ""  # why Redis did not answer at start (lazy only)
        try:
            self._salt = self._load_salt()
        except StateUnavailable as exc:
            if not lazy:
                raise
            self.unreachable = str(exc)

    def _load_salt(self) -> bytes:
        """The key of the keyed hashes, made once per Redis database and shared by every server using it."""
        try:
            self._redis.set(PREFIX + "salt", os.urandom(32), nx=True)
            salt = self._redis.get(PREFIX + "salt")
        except self._down as exc:
            raise StateUnavailable(f"Redis at {self.url} does not answer: {exc}") from exc
        return salt if isinstance(salt, bytes) else str(salt).encode()

    @property
    def salt(self) -> bytes:
        """The deployment's hash key; raises StateUnavailable while Redis has never answered (``lazy``)."""
        if self._salt is None:
            self._salt = self._load_salt()
        return self._salt

    def transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None) -> T:
        with self._turn:
            try:
                return self._transact(slots, step, expand)
            except self._down as exc:  # not answered; a script sent just before the break may have run (whole)
                raise StateUnavailable(f"Redis does not answer: {exc}") from exc

    def _fetch(self, slots: Sequence[Slot], found: dict[Slot, Series], versions: list[str]) -> None:
        """Add the series of ``slots`` to ``found`` and their versions to ``versions`` (one ``MGET``)."""
        raw = self._redis.mget([f"{PREFIX}{sig}:{key}" for sig, key in slots]) if slots else []
        for slot, value in zip(slots, raw, strict=True):
            if value is None:
                versions.append("0")
                found[slot] = Series()
            else:
                version, _, data = bytes(value).partition(b"|")
                versions.append(version.decode())
                found[slot] = Series.load(json.loads(data))

    def _transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None) -> T:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(random.random() * BACKOFF_SECONDS)  # jitter, not a secret
            versions: list[str] = []
            found: dict[Slot, Series] = {}
            self._fetch(slots, found, versions)
            if expand is not None:
                self._fetch(expand(found), found, versions)
            read = list(found)  # every slot read, in the order of ``versions``: the script checks them all
            keys = [f"{PREFIX}{sig}:{key}" for sig, key in read]
            result, changed = step(found)
            if not changed:
                return result
            argv: list[Any] = [len(keys), *versions]
            index = {slot: i for i, slot in enumerate(read)}
            for slot in changed:
                series = found[slot]
                ttl_ms = int(self.retention.get(slot[0], DEFAULT_RETENTION) * 1000)
                text = "" if series.empty else json.dumps(series.dump(), separators=(",", ":"))
                argv += [index[slot] + 1, text, ttl_ms]
            if self._cas(keys=keys, args=argv) == 1:
                return result
        raise StateConflict(f"the state of this request kept changing under it for {MAX_ATTEMPTS} tries; retry")

    def close(self) -> None:
        self._redis.close()
