"""A flow version's behaviour section, compiled once: its streams, features and ``where`` conditions.

``compile_plan`` (engine.state.plan_compile) checks a ``BehaviourSpec`` against the flow's input fields (every problem goes to
``report`` with the place it was found) and returns a ``StatePlan``. The plan is pure: given the
``Series`` of each key it reads the features as of an event time and records the event; a
``StateStore`` (engine.state.store) fetches and saves those series around it, atomically.

A *stream* is what features share: the same event type, key fields, ``where`` condition and fields
read (``txn_count_1h`` and ``txn_count_24h`` read one stream). Its resolution is the finest its
features declare and its retention the longest window plus the lateness; past that a key's
history is forgotten (the TTL of idle keys).

A ``linked`` feature (shared links one hop further: the other customers who used a device this
customer used) reads two streams: this key's items of the shared field (its devices), and a
*reverse* stream per shared value (per device, its customers) whose stored key is that value's item
hash, so the devices found in the first stream name the series to read next (``expand``). At most
``LINK_FANOUT`` shared values are followed per decision (the most recent first, and the request's
own), so a decision reads at most ``1 + LINK_FANOUT`` more series; each is bounded as any
``Series``, and their union is exact up to ``DISTINCT_BOUND`` items per bucket, then a HyperLogLog
(engine.state.series).

Keys and text items are stored as keyed BLAKE2b hashes (``salt``: the deployment's hash key), so
the state never holds a card number, customer id or device id in clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import FieldError, InvalidInput
from engine.expr.codegen import Program
from engine.state.intent import Append, Intent, Link, Seen, Slot
from engine.state.series import Series, Value, distinct_count, item_of

__all__ = ["LINK_FANOUT", "Report", "Slot", "StateFeature", "StatePlan", "Stream", "hash_key"]

Report = Callable[[str, str, tuple[str | int, ...], str | None], None]  # (message, code, location, hint)
LINK_FANOUT = 64  # shared values (e.g. devices) a linked feature follows per decision, the most recent first


@dataclass(frozen=True, slots=True)
class Stream:
    """The events one or more features read: per key, one ``Series``."""

    sig: str  # hash of (event, key, where, fields): the store's name for it
    event: str  # this flow's name (its decisions) or another event type
    key: tuple[str, ...]
    fields: tuple[str, ...]
    numeric: tuple[bool, ...]  # per field: a number (else text, held as an item hash)
    where: int  # index of its condition in the where program of its event type; -1: every event
    resolution: float  # seconds per bucket
    retention: float  # seconds of history kept: the longest window plus the lateness
    by_item: bool = False  # a reverse stream of linked features: stored per item hash of its one key field


@dataclass(frozen=True, slots=True)
class StateFeature:
    """One feature: an aggregate of a stream's field over a window."""

    name: str
    stream: int
    aggregate: str
    field: int  # index into the stream's fields; -1 when it reads none
    window: float  # seconds
    link: int = -1  # linked: the reverse stream (per shared value, the keys that used it)
    link_field: int = -1  # linked: index of this feature's key field among the reverse stream's fields


def hash_key(values: Sequence[Any], salt: bytes) -> str:
    """The stored name of a key: keyed BLAKE2b-128 (hex) of its values' text, joined by U+001F
    (a validated field's values have one type, so one value has one text)."""
    text = "\x1f".join([str(v) for v in values])
    return hashlib.blake2b(text.encode(), key=salt[:64], digest_size=16).hexdigest()


def _item(value: Any, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(str(value).encode(), key=salt[:64], digest_size=8).digest(), "little")


class StatePlan:
    """The compiled behaviour of one flow version (see the module docstring)."""

    __slots__ = ("events", "features", "flow", "lateness", "streams", "time_field", "where")

    def __init__(
        self, flow: str, events: str, lateness: float, time_field: str | None,
        streams: Sequence[Stream], features: Sequence[StateFeature], where: Mapping[str, Program],
    ) -> None:
        self.flow = flow
        self.events = events  # "attempts", "approved" or "none"
        self.lateness = lateness
        self.time_field = time_field
        self.streams = tuple(streams)
        self.features = tuple(features)
        self.where = where  # event type -> its compiled where conditions

    def slots(self, values: Mapping[str, Any], salt: bytes) -> list[Slot | None]:
        """Per stream, the (signature, hashed key) this input reads; None when a key field is missing."""
        out: list[Slot | None] = []
        for s in self.streams:
            parts = [values.get(k) for k in s.key]
            if any(p is None for p in parts):
                out.append(None)
            else:
                out.append((s.sig, _item_key(_item(parts[0], salt)) if s.by_item else hash_key(parts, salt)))
        return out

    @property
    def linked(self) -> bool:
        """Whether a feature reads series beyond the request's own slots (``expand``)."""
        return any(f.link >= 0 for f in self.features)

    def expand(
        self, series: Mapping[Slot, Series], slots: Sequence[Slot | None], values: Mapping[str, Any], at: float, salt: bytes,
    ) -> list[Slot]:
        """The further series the linked features read, given the request's own ``series``: per
        shared value followed (``_shared``), its reverse stream's slot."""
        out: dict[Slot, None] = {}
        for f in self.features:
            if f.link >= 0 and slots[f.stream] is not None:
                sig = self.streams[f.link].sig
                out.update(((sig, _item_key(i)), None) for i in self._shared(f, series, slots, values, at, salt))
        return [s for s in out if s not in series]

    def _shared(
        self, f: StateFeature, series: Mapping[Slot, Series], slots: Sequence[Slot | None], values: Mapping[str, Any],
        at: float, salt: bytes,
    ) -> list[int]:
        """The items of the shared values a linked feature follows: the request's own (when given) and
        up to ``LINK_FANOUT`` of this key's most recent within the window."""
        stream = self.streams[f.stream]
        own = values.get(stream.fields[f.field])
        mine = [_item(own, salt)] if own is not None else []
        slot = slots[f.stream]
        past = series[slot].recent_items(f.field, at - f.window, at, LINK_FANOUT) if slot is not None and slot in series else []
        return list(dict.fromkeys(mine + past))[:LINK_FANOUT]

    def _linked(
        self, f: StateFeature, series: Mapping[Slot, Series], slots: Sequence[Slot | None], values: Mapping[str, Any],
        at: float, salt: bytes,
    ) -> int:
        """How many other values of the key used a shared value this one used (or uses now) in the
        window: the union of the reverse series' items with this key's own, less itself."""
        sig = self.streams[f.link].sig
        me = _item(values.get(self.streams[f.stream].key[0]), salt)
        items, sketches = {me}, []
        for shared in self._shared(f, series, slots, values, at, salt):
            found = series.get((sig, _item_key(shared)))
            if found is not None:
                more, sketched = found.items(f.link_field, at - f.window, at)
                items |= more
                sketches += sketched
        return distinct_count(items, sketches) - 1

    def read(
        self, series: Mapping[Slot, Series], slots: Sequence[Slot | None], at: float,
        values: Mapping[str, Any] | None = None, salt: bytes = b"",
    ) -> dict[str, Any]:
        """Every feature as of ``at`` (Unix seconds) from the keys' series (absent: no history).

        Without history count/sum/distinct/linked are 0 and the others missing (None); with a key
        field missing every feature of that key is missing. ``values`` (the request) and ``salt``
        are read by linked features only: without ``values`` they count no history.
        """
        out: dict[str, Any] = {}
        empty = Series()
        for f in self.features:
            slot = slots[f.stream]
            if slot is None:
                out[f.name] = None
                continue
            if f.link >= 0:
                out[f.name] = self._linked(f, series, slots, values, at, salt) if values is not None else 0
                continue
            value = series.get(slot, empty).aggregate(f.aggregate, f.field, at - f.window, at)
            out[f.name] = int(value) if f.aggregate in ("count", "distinct") and value is not None else value
        return out

    def record(
        self, series: Mapping[Slot, Series], slots: Sequence[Slot | None], values: Mapping[str, Any], at: float,
        salt: bytes, event: str | None = None,
    ) -> list[Slot]:
        """Add the event (``event`` type; default this flow's decision) to every stream of that type
        whose ``where`` holds; returns the slots changed. A series absent from ``series`` is skipped
        (the store passes one, empty or not, for every slot)."""
        changed: list[Slot] = []
        for i, row in self.pending(slots, values, salt, event):
            s, slot = self.streams[i], slots[i]
            if slot is not None and slot in series and series[slot].record(at, row, s.numeric, s.resolution, self.lateness, s.retention):
                changed.append(slot)
        return changed

    def pending(
        self, slots: Sequence[Slot | None], values: Mapping[str, Any], salt: bytes, event: str | None = None,
    ) -> list[tuple[int, tuple[Value, ...]]]:
        """(stream index, row) of every stream the event (``event`` type; default this flow's
        decision) goes to: of that type, with its key present and its ``where`` holding. The row
        holds one value per field of the stream (numbers, item hashes of text, None when absent)."""
        kind = event or self.flow
        program = self.where.get(kind)
        holds = set(program.fired(dict(values))) if program is not None else set()
        out: list[tuple[int, tuple[Value, ...]]] = []
        for i, (s, slot) in enumerate(zip(self.streams, slots, strict=True)):
            if slot is None or s.event != kind or (s.where >= 0 and s.where not in holds):
                continue
            out.append((i, tuple(_value(values.get(f), n, salt) for f, n in zip(s.fields, s.numeric, strict=True))))
        return out

    def intent(
        self, slots: Sequence[Slot | None], values: Mapping[str, Any], at: float, salt: bytes, event: str | None = None,
        read: bool = True,
    ) -> Intent:
        """What recording the event at ``at`` will append (engine.state.intent), before any read:
        eager for another event type and for a flow counting every attempt; with ``read``, the
        linked features' reads (the reverse series of the shared values each key used in its window)."""
        appends: list[Append] = []
        seen: list[Seen] = []
        rows = dict(self.pending(slots, values, salt, event))
        for i, row in rows.items():
            s, slot = self.streams[i], slots[i]
            assert slot is not None  # pending skips missing keys
            appends.append(Append(slot, at, row, s.numeric, s.resolution, self.lateness, s.retention))
        links: list[Link] = []
        for f in self.features:
            slot = slots[f.stream]
            if f.link < 0 or slot is None:
                continue
            recorded = rows.get(f.stream)
            item = item_of(recorded[f.field]) if recorded is not None else None
            retention = self.streams[f.stream].retention
            if item is not None:
                seen.append(Seen(slot, f.field, _item_key(item), at, retention))
            if read:
                own = values.get(self.streams[f.stream].fields[f.field])
                links.append(Link(slot, f.field, self.streams[f.link].sig, at - f.window, _item_key(_item(own, salt)) if own is not None else None))
        eager = event is not None or self.events == "attempts"
        return Intent(appends, seen, links, eager)

    def given(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split ``raw`` into the input fields and this plan's feature values given beside them.

        A feature not given is read as from no history (``read`` with no series): 0 for count/sum/
        distinct when its key fields are present, else missing. Raises InvalidInput naming every
        given feature that is neither a number nor null.
        """
        names = {f.name for f in self.features}
        rest = {k: v for k, v in raw.items() if k not in names}
        bad = [
            FieldError(k, "a stateful feature must be a number or null", "type")
            for k, v in raw.items()
            if k in names and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
        ]
        if bad:
            raise InvalidInput(bad)
        slots: list[Slot | None] = [
            None if any(rest.get(k) is None for k in s.key) else (s.sig, "") for s in self.streams
        ]
        out = self.read({}, slots, 0.0)
        out.update((k, v) for k, v in raw.items() if k in names)
        return rest, out

    def streams_of(self, event: str) -> list[int]:
        """Indexes of the streams that record events of type ``event``."""
        return [i for i, s in enumerate(self.streams) if s.event == event]


def _item_key(item: int) -> str:
    """The stored key of a reverse stream's series: its shared value's 64-bit item hash, in hex."""
    return f"{item:016x}"


def _value(v: Any, numeric: bool, salt: bytes) -> Value:
    if v is None:
        return None
    if numeric:
        return float(v)
    return _item(v, salt)
