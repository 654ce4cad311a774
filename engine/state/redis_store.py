"""Stateful features in Redis (or Valkey), shared by several servers: ``verdict serve --state redis://HOST:PORT/DB``.

A series is a snapshot and a list of the events recorded since (engine.state.redis_scripts says
the keys), and appending an event is one ``RPUSH`` that never conflicts, so **a decision waits on
one round trip**: one Lua script (``EVALSHA``) reads the series of its keys, the reverse series
its linked features follow (found through each key's sorted set of the shared values it used)
and, when the flow counts every attempt, appends the decision's events, atomically (Redis runs a
script alone). The decision's features come from what was read (as of just before its own
event), then it is evaluated, without holding anything.

Consistency, per ``behaviour.events``:

- ``attempts`` (and ``RecordEvent``): read and record are one atomic script, so decisions and
  events on the same key, from any thread of any server sharing the Redis, are serialised and
  counted exactly. When the evaluation raises or the request stopped waiting (a ``state`` budget,
  engine.runtime.fallback.Gate), the events are taken back (``LREM`` of the exact element); a
  decision on the same key that read in between (within that decision's own evaluation time)
  has counted it, and if another server folded it into a snapshot meanwhile it stays (logged as
  ``state_undo_missed``).
- ``approved``: the read is the one round trip; the events of an approved decision are sent
  after it without waiting for the reply (pipelined on the same connection; the reply is read
  before the next command, a failure logged as ``state_deferred_failed`` and counted in
  ``failures``). A decision on the same key, on another thread or server, that reads before that
  append lands (about one round trip) does not count it. The decision log holds every answered
  decision durably either way.

The snapshot is rewritten (the events folded into it) by a reader that found ``COMPACT_AT`` or
more events, sent the same deferred way; it checks the version and the last event folded, so a
lost race just leaves the events for the next reader. Readers replay at most about
``COMPACT_AT`` events per series on top of the snapshot. A linked feature whose key used more
than ``LINK_PREFETCH`` shared values in its window reads the rest in a second round trip.

``transact`` without an intent (a whole-series read-modify-write) reads, runs the step and
writes with a compare-and-set script that checks nothing changed (optimistic; at most
``MAX_ATTEMPTS`` tries, then ``StateConflict``: gRPC ABORTED).

Redis's own durability applies (``appendonly yes`` with ``appendfsync everysec`` loses at most a
second of writes on a power loss; size and persist Redis as docs/behaviour.md says). Traps: the
store holds one connection of its own (the commands of one process go out in order on it, one
at a time, under a lock; a ``redis.Redis`` client is not safe across ``fork``: open the store in
each worker after forking, as ``verdict serve`` does). Scripts are loaded with ``SCRIPT LOAD``
and re-sent when a restarted Redis answers NOSCRIPT.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

import structlog

from engine.errors import StateConflict, StateUnavailable
from engine.state import redis_scripts as lua
from engine.state.intent import Append, Intended, Intent, Link, Seen, Slot
from engine.state.redis_wire import Wire
from engine.state.series import Series
from engine.state.store import Expand, Step

__all__ = ["COMPACT_AT", "MAX_ATTEMPTS", "RedisStore"]

T = TypeVar("T")
MAX_ATTEMPTS = 32  # tries of a read-modify-write when other servers keep writing the same keys
BACKOFF_SECONDS = 0.002  # the most a retry waits before it reads again (uniformly random below it)
COMPACT_AT = 16  # events read on top of a snapshot from which the reader folds them in
DEFAULT_RETENTION = 97 * 86400.0  # the longest window (90 days) plus the longest lateness (7 days)
_log = structlog.get_logger("verdict.state")


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
        self._refused = redis.ResponseError  # e.g. OOM past maxmemory: unavailable too
        self._wire = Wire(self._redis)
        self.retention: dict[str, float] = {}
        self.link_prefetch = lua.LINK_PREFETCH  # shared values a link read prefetches (more: a second round trip)
        self._turn = threading.Lock()  # one command of this process on the connection at a time
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
            self._redis.set(lua.PREFIX + "salt", os.urandom(32), nx=True)
            salt = self._redis.get(lua.PREFIX + "salt")
        except self._down as exc:
            raise StateUnavailable(f"Redis at {self.url} does not answer: {exc}") from exc
        return salt if isinstance(salt, bytes) else str(salt).encode()

    @property
    def salt(self) -> bytes:
        """The deployment's hash key; raises StateUnavailable while Redis has never answered (``lazy``)."""
        if self._salt is None:
            self._salt = self._load_salt()
        return self._salt

    @property
    def failures(self) -> Counter[str]:
        """Deferred commands that failed or went unconfirmed, by kind (see the module docstring)."""
        return self._wire.failures

    inline = False  # it waits on the network: a ``state`` budget runs it on a step worker

    def transact(
        self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intended | None = None,
        wait: float | None = None,
    ) -> T:
        """``step`` on the series of ``slots`` (see the module docstring); raises StateUnavailable when
        Redis does not answer or refuses (a script sent just before a break may have run, whole)."""
        try:
            if intent is None:
                with self._turn:
                    return self._read_modify_write(slots, step, expand)
            return self._transact(slots, step, expand, intent())
        except self._down as exc:
            raise StateUnavailable(f"Redis does not answer: {exc}") from exc
        except self._refused as exc:
            raise StateUnavailable(f"Redis refused the state script: {exc}") from exc

    def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        with self._turn:
            return self._wire.call(script, keys, args)

    def _transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None, intent: Intent) -> T:
        """One round trip: read (and, eager, append), then the step; see the module docstring."""
        own = list(dict.fromkeys(slots))
        token = os.urandom(8).hex()
        appends = [(a, _event(a, token)) for a in intent.appends if a.slot in own]
        eager = intent.eager
        links = _unique_links(intent.links)
        payload = self._payload(own, links, appends if eager else [], intent.seen if eager else [], read=True)
        found: dict[Slot, Series] = {}
        read: dict[Slot, tuple[str, int, bytes]] = {}  # slot -> (version, events replayed, the last of them)
        self._parse(self._call(lua.READ, [], [payload]), own, links, found, read)
        try:
            if expand is not None:
                more = [s for s in expand(found) if s not in found]
                if more:  # a key with more shared values in its window than the script prefetched
                    self._parse(self._call(lua.READ, [], [self._payload(more, [], [], [], read=True)]), more, [], found, {})
            result, changed = step(found)
        except BaseException:
            if eager and appends:
                self._undo(appends)
            raise
        done = set(changed)
        with self._turn:
            if not eager and done:
                mine = [(a, e) for a, e in appends if a.slot in done]
                payload = self._payload([a.slot for a, _ in mine], [], mine, [s for s in intent.seen if s.slot in done], read=False)
                self._wire.defer("append", lua.READ, [], [payload])
            self._compact(found, read, {a.slot: e for a, e in appends}, done)
        return result

    def _payload(
        self, slots: Sequence[Slot], links: Sequence[Link], appends: Sequence[tuple[Append, str]], seen: Sequence[Seen], *, read: bool,
    ) -> str:
        """The one argument of the ``READ`` script (engine.state.redis_scripts); an appended key lives the
        longest of its event's retention and ``retention``'s entry for its stream (every version using it)."""
        number = {slot: i + 1 for i, slot in enumerate(slots)}
        kept = self.retention
        return json.dumps({
            "r": 1 if read else 0,
            "s": [lua.series_key(*slot) for slot in slots],
            "l": [[lua.seen_key(*k.slot, k.field), repr(k.since), k.own or "", f"{lua.PREFIX}{k.reverse}:", self.link_prefetch] for k in links],
            "a": [[number[a.slot], e, str(int(max(a.retention, kept.get(a.slot[0], 0.0)) * 1000))] for a, e in appends],
            "m": [[lua.seen_key(*m.slot, m.field), m.item, repr(m.at), repr(m.at - m.retention), str(int(m.retention * 1000))]
                  for m in dict.fromkeys(seen)],
        }, separators=(",", ":"))

    @staticmethod
    def _parse(
        reply: bytes, slots: Sequence[Slot], links: Sequence[Link], found: dict[Slot, Series], read: dict[Slot, tuple[str, int, bytes]],
    ) -> None:
        """Add the series of a ``READ`` reply to ``found`` (own ``slots`` first, then the links' reverse
        series not already there) and, per own slot, (version, events, the last of them) to ``read``."""
        records = bytes(reply).split(b"\x1e") if slots or links else []
        for slot, record in zip(slots, records, strict=False):
            found[slot], read[slot] = _series(record.split(b"\x1d"))
        for link, record in zip(links, records[len(slots):], strict=True):
            for entry in record.split(b"\x1c") if record else ():
                item, *rest = entry.split(b"\x1d")
                reverse = (link.reverse, item.decode())
                if reverse not in found:
                    found[reverse] = _series(rest)[0]

    def _compact(self, found: dict[Slot, Series], read: dict[Slot, tuple[str, int, bytes]], mine: dict[Slot, str], done: set[Slot]) -> None:
        """Fold the events of every series read with ``COMPACT_AT`` or more into its snapshot (deferred)."""
        for slot, (version, count, last) in read.items():
            if count < COMPACT_AT:
                continue
            folded, tail = (count + 1, mine[slot].encode()) if slot in done and slot in mine else (count, last)
            series = found[slot]
            ttl = int(self.retention.get(slot[0], DEFAULT_RETENTION) * 1000)
            keys = [lua.series_key(*slot), lua.events_key(*slot)]
            self._wire.defer("compact", lua.COMMIT, keys, ["0", version, folded, tail, _dump(series), ttl])

    def _undo(self, appends: list[tuple[Append, str]]) -> None:
        """Take back the events appended (see the module docstring); a failure to reach Redis is logged."""
        try:
            removed = self._call(lua.UNDO, [lua.events_key(*a.slot) for a, _ in appends], [e for _, e in appends])
        except (*self._down, self._refused) as exc:
            _log.warning("state_undo_failed", events=len(appends), error=str(exc))
            self._wire.failures["undo"] += 1
            return
        if removed != len(appends):
            _log.warning("state_undo_missed", events=len(appends), removed=removed,
                         detail="another server folded them into a snapshot first: they stay recorded")
            self._wire.failures["undo_missed"] += 1

    def _read_modify_write(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None) -> T:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(random.random() * BACKOFF_SECONDS)  # jitter, not a secret
            found: dict[Slot, Series] = {}
            read: dict[Slot, tuple[str, int, bytes]] = {}
            for batch in (list(dict.fromkeys(slots)), None):
                if batch is None:
                    if expand is None:
                        break
                    batch = [s for s in expand(found) if s not in found]
                if batch:
                    self._parse(self._wire.call(lua.READ, [], [self._payload(batch, [], [], [], read=True)]), batch, [], found, read)
            result, changed = step(found)
            if not changed:
                return result
            done = set(changed)
            keys: list[str] = []
            args: list[Any] = ["1"]
            for slot, (version, count, last) in read.items():
                ttl = int(self.retention.get(slot[0], DEFAULT_RETENTION) * 1000)
                keys += [lua.series_key(*slot), lua.events_key(*slot)]
                args += [version, count, last, _dump(found[slot]) if slot in done else "", ttl]
            if self._wire.call(lua.COMMIT, keys, args) == 1:
                return result
        raise StateConflict(f"the state of this request kept changing under it for {MAX_ATTEMPTS} tries; retry")

    def close(self) -> None:
        with self._turn:
            self._wire.close()
        self._redis.close()


def _unique_links(links: Sequence[Link]) -> list[Link]:
    """One read per (key, field, reverse stream, own value): two features on the same link read once."""
    return list(dict.fromkeys(links))


def _event(a: Append, token: str) -> str:
    """An event as the events list holds it: what ``Series.record`` takes, and the transaction's token."""
    bits = sum(1 << i for i, n in enumerate(a.numeric) if n)
    return json.dumps([a.at, list(a.row), bits, a.resolution, a.lateness, a.retention, token], separators=(",", ":"))


def _series(parts: Sequence[bytes]) -> tuple[Series, tuple[str, int, bytes]]:
    """The series a reply's record makes (its snapshot, '' when absent, then its events), and
    (version, events replayed, the last of them)."""
    snapshot, events = parts[0], parts[1:]
    if not snapshot:
        version, series = "0", Series()
    else:
        head, _, data = snapshot.partition(b"|")
        version, series = head.decode(), Series.load(json.loads(data))
    for raw in events:
        at, row, bits, resolution, lateness, retention, _ = json.loads(raw)
        series.record(at, tuple(row), [bool(bits >> i & 1) for i in range(len(row))], resolution, lateness, retention)
    return series, (version, len(events), events[-1] if events else b"")


def _dump(series: Series) -> str:
    return json.dumps(series.dump(), separators=(",", ":"))
