"""One key's history of one event stream, and the aggregates over a window of it (pure).

A ``Series`` keeps the key's events exactly, up to ``RAW_BOUND`` of them; past that the oldest
half is folded into time buckets of the stream's resolution (count, first/last time and, per
field, count, sum, min, max and the distinct items: exact up to ``DISTINCT_BOUND`` items per
bucket, then a HyperLogLog, engine.state.hll). So memory per key is bounded by
``RAW_BOUND`` events plus one bucket per resolution step of the retention, whatever the traffic.

Exactness: a window over exact events is exact. A bucket counts whole when its start lies in the
window, so a window that reaches into the bucketed past can be off by the events of one bucket at
its old edge (at most one resolution step of history); distinct counts past ``DISTINCT_BOUND``
items in a bucket carry the sketch's 1.6 % standard error.

An event's ``values`` hold, per field of the stream, a number (sum/avg/min/max), a 64-bit item
hash (a distinct count over a text field: keys and items are hashed before they get here, so no
card number or identifier is ever held in clear) or None (absent). Times are Unix seconds.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import struct
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from engine.state.hll import HyperLogLog

__all__ = ["DISTINCT_BOUND", "RAW_BOUND", "Bucket", "Series", "distinct_count", "item_of"]

RAW_BOUND = 256  # exact events kept per key and stream before the oldest are bucketed
DISTINCT_BOUND = 128  # exact distinct items per bucket and field before a HyperLogLog replaces them

Value = float | int | None
Event = tuple[float, tuple[Value, ...]]  # (time, one value per field of the stream)
_time = itemgetter(0)  # an event's time: the sort key of ``Series.raw``


def item_of(value: Value) -> int | None:
    """The 64-bit item a value counts as in a distinct count (text arrives as its hash already)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int.from_bytes(hashlib.blake2b(struct.pack("<d", float(value)), digest_size=8).digest(), "little")


class _Field:
    """Per bucket and field: how many values, their sum, min, max and distinct items."""

    __slots__ = ("hi", "items", "lo", "n", "sketch", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.lo: float | None = None
        self.hi: float | None = None
        self.items: set[int] | None = set()
        self.sketch: HyperLogLog | None = None

    def add(self, value: Value, numeric: bool) -> None:
        if value is None:
            return
        self.n += 1
        if numeric:
            v = float(value)
            self.total += v
            self.lo = v if self.lo is None or v < self.lo else self.lo
            self.hi = v if self.hi is None or v > self.hi else self.hi
        item = item_of(value)
        if item is None:
            return
        if self.items is not None:
            self.items.add(item)
            if len(self.items) > DISTINCT_BOUND:
                self.sketch = HyperLogLog.of(self.items)
                self.items = None
        elif self.sketch is not None:
            self.sketch.add(item)

    def dump(self) -> list[Any]:
        items: Any = sorted(self.items) if self.items is not None else None
        sketch = base64.b64encode(bytes(self.sketch.registers)).decode() if self.sketch is not None else None
        return [self.n, self.total, self.lo, self.hi, items, sketch]

    @classmethod
    def load(cls, data: Sequence[Any]) -> _Field:
        f = cls()
        f.n, f.total, f.lo, f.hi = int(data[0]), float(data[1]), data[2], data[3]
        f.items = set(data[4]) if data[4] is not None else None
        f.sketch = HyperLogLog(base64.b64decode(data[5])) if data[5] is not None else None
        return f


class Bucket:
    """The folded events of one resolution step: [start, start + resolution)."""

    __slots__ = ("count", "fields", "first", "last", "start")

    def __init__(self, start: float, n_fields: int) -> None:
        self.start = start
        self.count = 0
        self.first = float("inf")
        self.last = float("-inf")
        self.fields = [_Field() for _ in range(n_fields)]

    def add(self, ts: float, values: Sequence[Value], numeric: Sequence[bool]) -> None:
        self.count += 1
        self.first = min(self.first, ts)
        self.last = max(self.last, ts)
        for f, v, is_number in zip(self.fields, values, numeric, strict=False):
            f.add(v, is_number)

    def dump(self) -> list[Any]:
        return [self.start, self.count, self.first, self.last, [f.dump() for f in self.fields]]

    @classmethod
    def load(cls, data: Sequence[Any]) -> Bucket:
        b = cls(float(data[0]), 0)
        b.count, b.first, b.last = int(data[1]), float(data[2]), float(data[3])
        b.fields = [_Field.load(f) for f in data[4]]
        return b


class Series:
    """One key's history of one stream: exact recent events, then buckets (see the module docstring)."""

    __slots__ = ("buckets", "folded_until", "high", "raw")

    def __init__(self) -> None:
        self.raw: list[Event] = []  # sorted by time
        self.buckets: list[Bucket] = []  # sorted by start
        self.folded_until = float("-inf")  # events before this time live in buckets
        self.high = float("-inf")  # the latest event time seen (the watermark's base)

    @property
    def empty(self) -> bool:
        return not self.raw and not self.buckets

    def add(self, ts: float, values: tuple[Value, ...], numeric: Sequence[bool], resolution: float, lateness: float) -> bool:
        """Record one event; False (and nothing changes) when it is later than ``lateness`` behind
        the latest event of this key (``high - lateness``): too late to place in its window."""
        if ts < self.high - lateness:
            return False
        self.high = max(self.high, ts)
        if ts < self.folded_until:
            self._bucket(ts, resolution, len(values)).add(ts, values, numeric)
            return True
        bisect.insort(self.raw, (ts, values), key=_time)
        if len(self.raw) > RAW_BOUND:
            self._fold(numeric, resolution)
        return True

    def record(
        self, ts: float, values: tuple[Value, ...], numeric: Sequence[bool], resolution: float, lateness: float, retention: float,
    ) -> bool:
        """``add`` the event, then forget what lies past ``retention`` seconds before the latest
        event (``expire``): what recording one event into a stream does, wherever it is replayed
        (engine.state.plan, and a Redis key's pending events, engine.state.redis_store). False, and
        nothing changed, for an event too late to place."""
        if not self.add(ts, values, numeric, resolution, lateness):
            return False
        self.expire(self.high - retention, resolution)
        return True

    def _bucket(self, ts: float, resolution: float, n_fields: int) -> Bucket:
        start = (ts // resolution) * resolution
        starts = [b.start for b in self.buckets]
        i = bisect.bisect_left(starts, start)
        if i < len(self.buckets) and self.buckets[i].start == start:
            return self.buckets[i]
        bucket = Bucket(start, n_fields)
        self.buckets.insert(i, bucket)
        return bucket

    def _fold(self, numeric: Sequence[bool], resolution: float) -> None:
        """Fold the oldest half (at least) of the exact events into buckets ending on a step boundary."""
        middle = self.raw[len(self.raw) // 2][0]
        cut = (middle // resolution + 1) * resolution
        keep = bisect.bisect_left(self.raw, cut, key=_time)
        for ts, values in self.raw[:keep]:
            self._bucket(ts, resolution, len(values)).add(ts, values, numeric)
        del self.raw[:keep]
        self.folded_until = max(self.folded_until, cut)

    def expire(self, before: float, resolution: float) -> None:
        """Forget what lies wholly before ``before`` (the retention: the longest window plus lateness)."""
        if self.raw and self.raw[0][0] <= before:
            del self.raw[: bisect.bisect_right(self.raw, before, key=_time)]
        while self.buckets and self.buckets[0].start + resolution <= before:
            del self.buckets[0]

    # Long (62 lines): one pass over exact events and buckets; each aggregate a short case.
    def aggregate(self, kind: str, field: int, since: float, until: float) -> float | int | None:
        """The aggregate ``kind`` (engine.state.spec.AGGREGATES) of field ``field`` (-1: none) over
        the events with ``since < time <= until``; None where there is no value (avg/min/max/
        first_seen/last_seen/time_since_last of an empty window); count, sum and distinct are 0.

        Times are Unix seconds; first_seen/last_seen are times, time_since_last is seconds before
        ``until``.
        """
        raw = self.raw
        lo = 0 if not raw or raw[0][0] > since else bisect.bisect_right(raw, since, key=_time)
        hi = len(raw) if not raw or raw[-1][0] <= until else bisect.bisect_right(raw, until, key=_time)
        buckets = [b for b in self.buckets if since < b.start <= until] if self.buckets else []
        if kind == "count":
            return hi - lo + sum(b.count for b in buckets)
        events = raw[lo:hi]
        if kind in ("first_seen", "last_seen", "time_since_last"):
            times = [e[0] for e in events] + [b.first for b in buckets] + [b.last for b in buckets]
            if not times:
                return None
            if kind == "first_seen":
                return min(times)
            latest = max(times)
            return latest if kind == "last_seen" else until - latest
        values = [e[1][field] for e in events if e[1][field] is not None]
        parts = [b.fields[field] for b in buckets if field < len(b.fields)]
        if kind == "distinct":
            return distinct_count(*_items(values, parts))
        n = len(values) + sum(p.n for p in parts)
        total = _fsum([float(v) for v in values] + [p.total for p in parts])  # type: ignore[arg-type]  # numeric field
        if kind == "sum":
            return total
        if n == 0:
            return None
        if kind == "avg":
            return total / n
        if kind == "min":
            return min([float(v) for v in values] + [p.lo for p in parts if p.lo is not None])  # type: ignore[arg-type]  # numeric field
        if kind == "max":
            return max([float(v) for v in values] + [p.hi for p in parts if p.hi is not None])  # type: ignore[arg-type]  # numeric field
        raise ValueError(f"unknown aggregate {kind!r}")

    def items(self, field: int, since: float, until: float) -> tuple[set[int], list[HyperLogLog]]:
        """The distinct items of field ``field`` over the events with ``since < time <= until``: the
        exact ones, and the sketches of buckets past ``DISTINCT_BOUND`` (``distinct_count`` adds them up)."""
        events = [e for e in self.raw if since < e[0] <= until]
        parts = [b.fields[field] for b in self.buckets if since < b.start <= until and field < len(b.fields)]
        return _items([e[1][field] for e in events], parts)

    def recent_items(self, field: int, since: float, until: float, limit: int) -> list[int]:
        """Up to ``limit`` distinct items of field ``field`` in ``(since, until]``, the most recently
        seen first (exact events newest first, then buckets newest first; a bucket's items past
        ``DISTINCT_BOUND``, held only as a sketch, cannot be listed and are skipped)."""
        out: dict[int, None] = {}
        for ts, values in reversed(self.raw):
            if len(out) >= limit:
                return list(out)
            item = item_of(values[field]) if since < ts <= until else None
            if item is not None:
                out.setdefault(item)
        for b in reversed(self.buckets):
            if since < b.start <= until and field < len(b.fields) and b.fields[field].items is not None:
                for item in sorted(b.fields[field].items or ()):
                    if len(out) >= limit:
                        return list(out)
                    out.setdefault(item)
        return list(out)

    def dump(self) -> list[Any]:
        """A JSON-ready form (``load`` reads it back exactly)."""
        return [self.high, self.folded_until, [[ts, list(v)] for ts, v in self.raw], [b.dump() for b in self.buckets]]

    @classmethod
    def load(cls, data: Sequence[Any]) -> Series:
        s = cls()
        s.high, s.folded_until = float(data[0]), float(data[1])
        s.raw = [(float(ts), tuple(v)) for ts, v in data[2]]
        s.buckets = [Bucket.load(b) for b in data[3]]
        return s


def _fsum(values: list[float]) -> float:
    return math.fsum(values)  # exact rounding: the same sum whatever the order events were folded in


def _items(values: list[Value], parts: list[_Field]) -> tuple[set[int], list[HyperLogLog]]:
    """The exact items of ``values`` and of the buckets' fields, and the sketches of those past the bound."""
    items = {i for i in (item_of(v) for v in values) if i is not None}
    for p in parts:
        if p.items is not None:
            items |= p.items
    return items, [p.sketch for p in parts if p.sketch is not None]


def distinct_count(items: set[int], sketches: Sequence[HyperLogLog]) -> int:
    """How many distinct items ``items`` and ``sketches`` hold together: exact without sketches, else
    the union sketch's estimate (relative standard error engine.state.hll.HLL_ERROR)."""
    if not sketches:
        return len(items)
    union = HyperLogLog()
    for s in sketches:
        union.merge(s)
    for i in items:
        union.add(i)
    return union.count()
