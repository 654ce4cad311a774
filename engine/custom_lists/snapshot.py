"""The in-memory form of the custom lists that decisions read: an immutable snapshot in a view.

A ``ListSnapshot`` holds, per list, a dict from key (``engine.custom_lists.kinds``) to expiry
(Unix seconds, ``inf`` for none) and, for IP lists, the CIDR ranges grouped by prefix length. A
look-up is one dict probe (plus one per distinct prefix length of an IP list's ranges, at most 33
for IPv4 and 129 for IPv6): O(1) in the number of entries. An entry whose ``expires_at`` has
passed is in no list from that instant, whether or not the snapshot was refreshed since.

A ``ListView`` is what compiled flows hold (``CompiledFlow`` look-ups are bound to it at compile
time): the snapshot now current, swapped whole by whoever refreshes it (``ListRefresher`` in a
server, a policy test with the lists its case declares). ``using(snapshot)`` replaces it for the
current context only (a ``contextvars.ContextVar``): a policy test run by a live server's reload
never changes what the server's requests see.

Null semantics: a missing value (absent or null) is in no list, and, as every test on a missing
value in the expression language, ``x not in list('L')`` is false for it too (docs/lists.md).

Replays: a decision reads the lists as they were when it was decided, and they change without a new
flow version, so a replay of it against today's (or a replay process's empty) lists would not
reproduce it. ``recording()`` makes every look-up of the current context answer through a
``ListTape``: the decision service records, per list name, the answers in the order the flow asked
(``Decision.lists``, written to the decision log: names and member/not, never the value looked up),
and a replay of the same version and revision plays them back in the same order
(``recording(logged)``), since the same compiled flow on the same input asks the same questions in
the same order. The tape travels to a step worker with the context (engine.runtime.fallback).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.custom_lists.declarations import ListDeclaration
from engine.custom_lists.kinds import ListKind, parse_network, probe_key
from engine.runtime.privacy import HashKey

__all__ = ["Entry", "ListSnapshot", "ListTape", "ListView"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a list as the snapshot needs it: its key and expiry (Unix seconds, inf: never)."""

    list: str
    key: str
    expires_at: float = math.inf


@dataclass(frozen=True)
class _Members:
    keys: Mapping[str, float]  # key -> expires_at
    networks: Mapping[tuple[int, int], Mapping[int, float]] = field(default_factory=dict)  # (version, prefix) -> network -> expiry


class ListSnapshot:
    """Every list's members at one generation of the store; immutable once built."""

    __slots__ = ("_lists", "generation")

    def __init__(self, entries: Iterable[Entry], kinds: Mapping[str, ListKind], generation: int = 0) -> None:
        keys: dict[str, dict[str, float]] = {}
        nets: dict[str, dict[tuple[int, int], dict[int, float]]] = {}
        for e in entries:
            net = parse_network(e.key) if kinds.get(e.list) is ListKind.IP else None
            if net is None:
                keys.setdefault(e.list, {})[e.key] = e.expires_at
            else:
                version, prefix, address = net
                nets.setdefault(e.list, {}).setdefault((version, prefix), {})[address] = e.expires_at
        names = set(keys) | set(nets)
        self._lists: Mapping[str, _Members] = MappingProxyType(
            {n: _Members(MappingProxyType(keys.get(n, {})), MappingProxyType(nets.get(n, {}))) for n in names}
        )
        self.generation = generation

    def sizes(self) -> dict[str, int]:
        """Entries per list (expired ones included until the next refresh)."""
        return {n: len(m.keys) + sum(len(v) for v in m.networks.values()) for n, m in self._lists.items()}

    def contains(self, name: str, key: str, now: float) -> bool:
        """Whether ``key`` (already normalised) is an unexpired member of list ``name`` at ``now``."""
        members = self._lists.get(name)
        if members is None:
            return False
        expires = members.keys.get(key)
        if expires is not None and expires > now:
            return True
        if not members.networks:
            return False
        addr = ipaddress.ip_address(key)
        value, bits = int(addr), addr.max_prefixlen
        for (version, prefix), networks in members.networks.items():
            if version != addr.version:
                continue
            expires = networks.get(value >> (bits - prefix) << (bits - prefix))
            if expires is not None and expires > now:
                return True
        return False


_EMPTY = ListSnapshot((), {})


class ListTape:
    """One decision's list answers: per list name, True/False in the order the flow asked.

    Live (``logged`` None) every answer comes from the snapshot and is recorded. In a replay
    (``logged``: a decision record's ``lists``) the n-th question to a list gets the n-th logged
    answer; a question the log does not hold (a record written before lists were logged) is answered
    by the snapshot, and recorded like the others.
    """

    __slots__ = ("_logged", "answers")

    def __init__(self, logged: Mapping[str, Sequence[bool]] | None = None) -> None:
        self._logged = logged
        self.answers: dict[str, list[bool]] = {}

    def answer(self, name: str, ask: Callable[[object], bool], value: object) -> bool:
        """The answer for list ``name`` (``ask(value)`` reads the snapshot), recorded."""
        seen = self.answers.get(name)
        if seen is None:
            seen = self.answers[name] = []
        logged = self._logged.get(name) if self._logged is not None else None
        member = bool(logged[len(seen)]) if logged is not None and len(seen) < len(logged) else ask(value)
        seen.append(member)
        return member

    def read(self) -> dict[str, tuple[bool, ...]]:
        """What was asked: list name -> answers in order (empty when no list was read)."""
        return {name: tuple(values) for name, values in self.answers.items()}


class _Recording:
    """``ListView.recording``'s context manager: the tape is current between enter and exit."""

    __slots__ = ("_tape", "_token", "_var")

    def __init__(self, var: contextvars.ContextVar[ListTape | None], tape: ListTape) -> None:
        self._var = var
        self._tape = tape
        self._token: contextvars.Token[ListTape | None] | None = None

    def __enter__(self) -> ListTape:
        self._token = self._var.set(self._tape)
        return self._tape

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            self._var.reset(self._token)


class ListView:
    """The current snapshot of a policy root's custom lists, and a look-up function per list.

    ``kinds`` are the declared lists (``policies/custom_lists.yaml``); ``key`` the hash key card numbers are
    fingerprinted with (the same one the store used); ``clock`` gives Unix seconds for expiry.
    """

    def __init__(self, kinds: Mapping[str, ListKind], key: HashKey, clock: Callable[[], float] = time.time) -> None:
        self.kinds: Mapping[str, ListKind] = MappingProxyType(dict(kinds))
        self.declarations: Mapping[str, ListDeclaration] = MappingProxyType({})
        self.key = key
        self._clock = clock
        self._snapshot = _EMPTY
        self._override: contextvars.ContextVar[ListSnapshot | None] = contextvars.ContextVar("verdict_lists", default=None)
        self._tape: contextvars.ContextVar[ListTape | None] = contextvars.ContextVar("verdict_list_tape", default=None)

    def declare(self, declarations: Mapping[str, ListDeclaration]) -> None:
        """Take the lists a (re)load of the policy root declares; look-ups already bound keep their kind."""
        self.declarations = MappingProxyType(dict(declarations))
        self.kinds = MappingProxyType({name: d.kind for name, d in declarations.items()})

    @property
    def snapshot(self) -> ListSnapshot:
        """The snapshot look-ups read in this context."""
        override = self._override.get()
        return override if override is not None else self._snapshot

    def swap(self, snapshot: ListSnapshot) -> None:
        """Make ``snapshot`` current for every later look-up (one reference assignment: atomic)."""
        self._snapshot = snapshot

    @contextlib.contextmanager
    def using(self, snapshot: ListSnapshot) -> Iterator[None]:
        """Read ``snapshot`` instead of the current one, in this context only (policy tests)."""
        token = self._override.set(snapshot)
        try:
            yield
        finally:
            self._override.reset(token)

    def recording(self, logged: Mapping[str, Sequence[bool]] | None = None) -> _Recording:
        """A context manager that answers and records every look-up of this context through a new
        ``ListTape``, which it returns on entry (``logged``: a replay's answers to play back, see the
        module docstring). A small class, not a generator: it runs on every decision."""
        return _Recording(self._tape, ListTape(logged))

    def lookup(self, name: str) -> Callable[[object], bool | None]:
        """``value -> in list name?``: None for a missing value (three-valued, as every test), else a bool.

        Raises KeyError for a list that is not declared (the compiler checked the name first).
        """
        kind = self.kinds[name]
        key = self.key
        clock = self._clock
        override = self._override.get
        taped = self._tape.get

        def contains(value: object) -> bool:
            probe = probe_key(kind, value, key)
            if probe is None:
                return False
            snapshot = override()
            return (snapshot if snapshot is not None else self._snapshot).contains(name, probe, clock())

        def member(value: object) -> bool | None:
            if value is None:
                return None
            tape = taped()
            if tape is None:
                return contains(value)
            return tape.answer(name, contains, value)

        member.__name__ = f"in_list_{name}"
        return member
