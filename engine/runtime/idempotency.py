"""Idempotent retries: the same ``request_id`` within a window gets the same decision back.

A caller that retries (a timeout, a lost connection) sends the same ``request_id``. Within the
window the retry returns the stored decision — same decision id, same answer, even if another
version went live in between — and is not decided or logged again. The same ``request_id`` with
a different request (flow, requested version or input) raises ``IdempotencyConflict``
(ALREADY_EXISTS over gRPC). Requests are compared by a keyed fingerprint: HMAC-SHA256 of the
canonical JSON of ``[flow, requested version, input]`` (numbers as floats, keys sorted), so the
log can keep fingerprints without exposing the input.

Request ids are scoped per caller: the cache key is ``(caller, request_id)``, where the caller is
the authenticated name the transport found (engine/grpc/auth.py; "" on a server that does not
authenticate). One client cannot claim, read or block another client's id.

Two concurrent calls with the same ``request_id``: the second waits for the first and gets its
decision. Memory is bounded by the window, by ``max_entries`` and by ``max_bytes`` (oldest first
out; docs/limits.md). An entry's bytes are estimated by ``entry_bytes`` from its request id and its
stored decision's reasons, fired rules and scores; the estimate is calibrated against tracemalloc
(a test holds it at or above the measured size: ~1.0 KB for a bundled decision). Request ids are
at most ``engine.limits.MAX_REQUEST_ID_CHARS`` characters (the service refuses longer ones). On
restart the cache is rebuilt from the decision log's recent records (``preload``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.errors import IdempotencyConflict
from engine.limits import MAX_REQUEST_ID_CHARS
from engine.runtime.privacy import HashKey
from engine.types import Decision

__all__ = ["DEFAULT_MAX_BYTES", "Fingerprinter", "IdempotencyCache", "canonical_json", "entry_bytes"]

DEFAULT_WINDOW_SECONDS = 600.0
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 128 * 1024 * 1024

# Estimated bytes of one entry (tracemalloc on CPython 3.11, 64-bit): the OrderedDict slot, the
# entry, the fingerprint and decision id strings, Decision and Outcome objects and their small maps;
# plus each variable part. Generous on purpose: the bound must hold, not be tight.
_ENTRY_BASE = 1200
_PER_REASON = 300
_PER_FIRED = 200
_PER_SCORE = 150
_PER_MODEL = 200


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else str(f)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


_encode_sorted = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
_PLAIN = (str, float, bool, type(None))


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, no spaces, every number a float (5 and 5.0 are the same request)."""
    return _encode_sorted(_canonical(value)).encode("utf-8")


def _canonical_input(input: Mapping[str, Any]) -> Any:
    for v in input.values():  # the common shape (from a Struct): flat, numbers already floats
        if type(v) not in _PLAIN or (type(v) is float and not math.isfinite(v)):
            return _canonical(input)
    return input


class Fingerprinter:
    """Keyed fingerprints of requests; ``key_id`` says which key made them.

    The last fingerprint made on each thread is kept with the input object it was made for, so the
    decision log asking again for the same request (same thread, same object) costs nothing.
    """

    def __init__(self, key: HashKey) -> None:
        self._secret = key.secret
        self.key_id = key.key_id
        self._last = threading.local()

    def __call__(self, flow: str, version: str, input: Mapping[str, Any]) -> str:
        last = getattr(self._last, "entry", None)
        if last is not None and last[0] is input and last[1] == flow and last[2] == version:
            return str(last[3])
        data = _encode_sorted([flow, version, _canonical_input(input)]).encode("utf-8")
        fp = hmac.new(self._secret, data, hashlib.sha256).hexdigest()
        self._last.entry = (input, flow, version, fp)
        return fp


def entry_bytes(request_id: str, decision: Decision | None) -> int:
    """Estimated bytes a cache entry holds (at or above tracemalloc's measure; see the module doc)."""
    size = _ENTRY_BASE + 2 * len(request_id)
    if decision is not None:
        outcome = decision.outcome
        size += (
            _PER_REASON * len(outcome.reasons) + sum(len(r.message) for r in outcome.reasons)
            + _PER_FIRED * len(outcome.fired) + _PER_SCORE * len(outcome.scores) + _PER_MODEL * len(decision.models)
        )
    return size


class _Entry:
    __slots__ = ("decision", "done", "expires", "fingerprint", "size")

    def __init__(self, fingerprint: str, expires: float, decision: Decision | None = None, size: int = 0) -> None:
        self.fingerprint = fingerprint
        self.expires = expires
        self.decision = decision
        self.size = size
        self.done: threading.Event | None = None if decision is not None else threading.Event()


def _slim(decision: Decision) -> Decision:
    """The decision without the evaluation's feature values, encoded model rows and custom-list
    answers (not needed to answer again: the decision log already holds them)."""
    if decision.lists:
        decision = dataclasses.replace(decision, lists={})
    if not decision.outcome.features and not decision.outcome.rows:
        return decision
    return dataclasses.replace(decision, outcome=dataclasses.replace(decision.outcome, features={}, rows=()))


class IdempotencyCache:
    """Remembers recent decisions by request id, within a window, a maximum count and a byte budget."""

    def __init__(
        self,
        fingerprint: Fingerprinter,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0 or max_entries < 1 or max_bytes < 1:
            raise ValueError("the idempotency window, max_entries and max_bytes must be positive")
        self.fingerprint = fingerprint
        self.window = float(window_seconds)
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Estimated bytes held by the entries (``entry_bytes`` summed); at most ``max_bytes``."""
        return self._bytes

    def once(
        self,
        request_id: str,
        flow: str,
        version: str,
        input: Mapping[str, Any],
        decide: Callable[[], Decision],
        *,
        caller: str = "",
    ) -> Decision:
        """The stored decision for ``caller``'s retry of this request, else ``decide()`` (remembered)."""
        fp = self.fingerprint(flow, version, input)
        key = (caller, request_id)
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                entry = self._entries.get(key)
                if entry is None:
                    mine = _Entry(fp, now + self.window, size=entry_bytes(request_id, None))
                    self._add(key, mine)
                    break
                if entry.fingerprint != fp:
                    raise IdempotencyConflict(
                        f"request_id {request_id!r} was already used for a different request "
                        f"(another flow, version or input) in the last {self.window:g}s"
                    )
                if entry.decision is not None:
                    return entry.decision
                waiting = entry.done
            assert waiting is not None
            waiting.wait()  # the first call with this id is deciding; take its answer (or retry)
        try:
            decision = decide()
        except BaseException:
            with self._lock:
                if self._entries.get(key) is mine:
                    self._remove(key)
            assert mine.done is not None
            mine.done.set()
            raise
        slim = _slim(decision)
        size = entry_bytes(request_id, slim)
        with self._lock:
            mine.decision = slim
            done, mine.done = mine.done, None  # waiters hold their own reference; the entry keeps none
            if self._entries.get(key) is mine:  # still held: account for the stored decision
                self._bytes += size - mine.size
                mine.size = size
                self._bound()
        assert done is not None
        done.set()
        return decision

    def preload(self, entries: Iterable[tuple[str, str, Decision, float]]) -> int:
        """Remember logged decisions: (request id, fingerprint, decision, age in seconds), oldest first.

        Each is scoped to the caller recorded with the decision (``Decision.caller``).
        """
        n = 0
        with self._lock:
            now = self._clock()
            for request_id, fp, decision, age in entries:
                if age >= self.window or not request_id or len(request_id) > MAX_REQUEST_ID_CHARS:
                    continue
                key = (decision.caller, request_id)
                slim = _slim(decision)
                if key in self._entries:
                    self._remove(key)
                self._add(key, _Entry(fp, now + self.window - max(age, 0.0), slim, entry_bytes(request_id, slim)))
                n += 1
        return n

    def _add(self, key: tuple[str, str], entry: _Entry) -> None:
        self._entries[key] = entry
        self._bytes += entry.size
        self._bound()

    def _remove(self, key: tuple[str, str]) -> None:
        self._bytes -= self._entries.pop(key).size

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, first = next(iter(entries.items()))
            if first.expires > now:
                return
            self._remove(key)

    def _bound(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries or (self._bytes > self.max_bytes and len(entries) > 1):
            self._bytes -= entries.popitem(last=False)[1].size
