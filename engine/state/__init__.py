"""Behaviour over time: stateful features (velocity, windowed aggregates) computed by Verdict.

``spec`` is the flow file's ``behaviour:`` section, ``plan`` its compiled form (pure: read features
from a key's history as of a time, record an event), ``series`` a key's bounded history and
``hll`` the distinct-count sketch; ``store``, ``sqlite`` and ``redis_store`` (with its Lua in
``redis_scripts``) keep the histories (I/O at the edge); ``intent`` is what a transaction will
record, known before it reads (so Redis reads and records in one round trip).
See docs/behaviour.md.
"""

from engine.state.plan import StatePlan
from engine.state.plan_compile import compile_plan
from engine.state.spec import BehaviourSpec
from engine.state.store import MemoryStore, StateStore, decide_with_state, record_event

__all__ = ["BehaviourSpec", "MemoryStore", "StatePlan", "StateStore", "compile_plan", "decide_with_state", "record_event"]
