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
decision. Memory is bounded by the window and by ``max_entries`` (oldest first out). On restart
the cache is rebuilt from the decision log's recent records (``preload``).
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
from engine.privacy import HashKey
from engine.types import Decision

__all__ = ["Fingerprinter", "IdempotencyCache", "canonical_json"]

DEFAULT_WINDOW_SECONDS = 600.0
DEFAULT_MAX_ENTRIES = 100_000


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


class _Entry:
    __slots__ = ("decision", "done", "expires", "fingerprint")

    def __init__(self, fingerprint: str, expires: float, decision: Decision | None = None) -> None:
        self.fingerprint = fingerprint
        self.expires = expires
        self.decision = decision
        self.done: threading.Event | None = None if decision is not None else threading.Event()


def _slim(decision: Decision) -> Decision:
    """The decision without the evaluation's feature values (not needed to answer again)."""
    if not decision.outcome.features:
        return decision
    return dataclasses.replace(decision, outcome=dataclasses.replace(decision.outcome, features={}))


class IdempotencyCache:
    """Remembers recent decisions by request id, within a window and a maximum count."""

    def __init__(
        self,
        fingerprint: Fingerprinter,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0 or max_entries < 1:
            raise ValueError("the idempotency window and max_entries must be positive")
        self.fingerprint = fingerprint
        self.window = float(window_seconds)
        self.max_entries = int(max_entries)
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

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
                    mine = _Entry(fp, now + self.window)
                    self._entries[key] = mine
                    self._bound()
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
                    del self._entries[key]
            assert mine.done is not None
            mine.done.set()
            raise
        slim = _slim(decision)
        with self._lock:
            mine.decision = slim
            done, mine.done = mine.done, None  # waiters hold their own reference; the entry keeps none
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
                if age >= self.window or not request_id:
                    continue
                key = (decision.caller, request_id)
                self._entries[key] = _Entry(fp, now + self.window - max(age, 0.0), _slim(decision))
                self._entries.move_to_end(key)
                n += 1
            self._bound()
        return n

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, first = next(iter(entries.items()))
            if first.expires > now:
                return
            del entries[key]

    def _bound(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
