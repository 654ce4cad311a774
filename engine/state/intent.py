"""What a transaction will record, known before it reads: so a remote store can read and record in one round trip.

A decision's record depends on its input only (the ``where`` conditions and the fields recorded
read the input, never the features or the outcome); whether it is recorded at all depends on the
outcome only when the flow counts approved decisions. ``StatePlan.intent`` (engine.state.plan)
computes it from the request before the store is asked, and ``StateStore.transact`` may use it:
the Redis store (engine.state.redis_store) reads every series, the linked features' reverse
series and appends the event in one script when ``eager``; the in-process stores ignore it (their
step records under their lock, as before).

``Append``: one event for one series, with what replaying it needs (``Series.record``'s
arguments). ``Link``: a linked feature's read of the reverse series of the shared values a key
used since a time, named through the per-key index that ``Seen`` entries keep (the values of a
field a key used, by latest time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.state.series import Value

__all__ = ["Append", "Intended", "Intent", "Link", "Seen", "Slot"]

Slot = tuple[str, str]  # (stream signature, hashed key)


@dataclass(frozen=True, slots=True)
class Append:
    """Record an event at ``at`` (Unix seconds) with ``row`` (one value per field) in ``slot``'s series."""

    slot: Slot
    at: float
    row: tuple[Value, ...]
    numeric: tuple[bool, ...]
    resolution: float  # seconds per bucket
    lateness: float  # seconds an event may come behind the key's latest and still count
    retention: float  # seconds of history kept behind the latest event


@dataclass(frozen=True, slots=True)
class Seen:
    """Note that ``slot``'s key used shared value ``item`` (a reverse series' stored key) at ``at``."""

    slot: Slot
    field: int  # the field of slot's stream the item is a value of
    item: str
    at: float
    retention: float


@dataclass(frozen=True, slots=True)
class Link:
    """Read the reverse series (stream ``reverse``) of the values of field ``field`` that ``slot``'s key
    used after ``since``, and of ``own`` (the request's value, when given)."""

    slot: Slot
    field: int
    reverse: str  # the reverse stream's signature
    since: float
    own: str | None


@dataclass(frozen=True, slots=True)
class Intent:
    """A transaction's record, known before it reads (see the module docstring).

    ``eager``: the appends happen whatever the step decides (a flow counting every attempt, or an
    event): a store may apply them in the same round trip as the read, and must undo them when the
    step raises. Otherwise they happen only for the slots the step reports changed.
    """

    appends: Sequence[Append]
    seen: Sequence[Seen]
    links: Sequence[Link]
    eager: bool


Intended = Callable[[], Intent]  # computes the intent when a store asks (the in-process stores never do)
