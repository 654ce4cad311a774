"""The ``state_decide`` case: what stateful features cost inside a decision (docs/behaviour.md, issue 14).

card_payment decides the real payments of data/card_payments.csv in process (``Decider.decide``),
alternating round by round in one run:

- ``v1_counters_sent``: version 1, the caller sending the counters (the baseline: no state);
- ``v2_memory``, ``v2_sqlite``: version 2 computing its 8 features itself (4 streams and a linked
  feature's reverse stream) with the in-process store and the embedded SQLite store of
  ``verdict serve`` (a file in the run's work directory);
- with a Redis URL (``--redis``): ``v2_redis`` (engine.state.redis_store, one round trip a
  decision) and ``redis_ping``, a bare ``PING`` round trip to the same Redis: the target is that
  Redis adds at most 1.5 PINGs to the memory store's decision;
- ``linked_read``: the linked feature alone (``linked_customers_7d``: the reverse series of each
  device the customer used, and their union), read from the memory store's series after its rounds.

``state_grpc`` (with a Redis URL): the same v2 payments over gRPC, ``Decide`` at concurrency 1 on
two ``verdict serve`` processes alternated round by round by one load generator, one with the
embedded SQLite store (``v2_sqlite``) and one with ``--state`` Redis (``v2_redis``), and a bare
``PING`` to that Redis from this process in the same run (``redis_ping``).

Payments carry no event time, so each is recorded at the server's clock: a customer's history grows
over the run, as in production.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from benchmarks.suite.inputs import card_rows
from benchmarks.suite.timing import median_of_rounds, summarize, time_call
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.state.series import Series
from engine.state.sqlite import SqliteStore
from engine.state.store import MemoryStore

__all__ = ["V1_ONLY", "run_state_decide", "run_state_grpc"]

FLOW = "card_payment"
V1_ONLY = ("txn_count_1h", "txn_count_24h", "amount_avg_30d", "new_device")  # version 1's counters, computed by version 2


def run_state_decide(
    root: Path, data_root: Path, work: Path, *, rows: int, warmup: int, iterations: int, rounds: int, redis_url: str | None = None,
) -> list[dict[str, Any]]:
    """The case's rows (see the module docstring), each the median of ``rounds`` rounds."""
    policies = load_policies(root)
    v1 = card_rows(data_root, rows)
    v2 = [{k: v for k, v in r.items() if k not in V1_ONLY} for r in v1]
    memory = MemoryStore(b"k" * 32)
    cases: dict[str, tuple[Any, list[dict[str, Any]]]] = {
        "v1_counters_sent": (_decide(Decider(policies), "1"), v1),
        "v2_memory": (_decide(Decider(policies, state=memory), "2"), v2),
        "v2_sqlite": (_decide(Decider(policies, state=SqliteStore(work / "state.db")), "2"), v2),
    }
    if redis_url:
        import redis

        from engine.state.redis_store import RedisStore

        client = redis.Redis.from_url(redis_url)
        cases["v2_redis"] = (_decide(Decider(policies, state=RedisStore(redis_url)), "2"), v2)
        cases["redis_ping"] = (lambda _r: client.ping(), v2)
    for fn, inputs in cases.values():
        time_call(fn, inputs, warmup)
    per_round: dict[str, list[dict[str, Any]]] = {kind: [] for kind in cases}
    for r in range(rounds):  # alternated round by round: a load change on the machine hits every kind alike
        for kind, (fn, inputs) in cases.items():
            gc.collect()
            per_round[kind].append(summarize(time_call(fn, inputs, iterations, start=r * iterations)))
    out = [{"name": "state_decide", "flow": FLOW, "kind": kind, **median_of_rounds(per_round[kind])} for kind in cases]
    if redis_url:  # the Redis target: what Redis adds to the memory store's decision, in bare PING round trips
        by_kind = {row["kind"]: row for row in out}
        added = by_kind["v2_redis"]["p50_us"] - by_kind["v2_memory"]["p50_us"]
        by_kind["v2_redis"]["added_in_pings_p50"] = round(added / by_kind["redis_ping"]["p50_us"], 2)
    plan = policies.flows[FLOW].versions["2"].state
    assert plan is not None
    out.append({"name": "state_decide", "flow": FLOW, "kind": "linked_read",
                **_linked_read(plan, memory, v2, iterations, rounds)})
    return out


def _decide(decider: Decider, version: str) -> Any:
    return lambda raw: decider.decide(FLOW, raw, version=version)


def _linked_read(plan: Any, store: MemoryStore, inputs: list[dict[str, Any]], iterations: int, rounds: int) -> dict[str, Any]:
    """The linked feature's own work per decision: follow the customer's devices (``expand``) and count
    the union of their customers, on the memory store's series as the run left them."""
    linked = next(f for f in plan.features if f.link >= 0)
    series: dict[Any, Series] = store._series  # the benchmark reads the store's dict as it is
    at = time.time()
    prepared = []
    for raw in inputs:
        slots = plan.slots(raw, store.salt)
        found = {s: series.get(s) or Series() for s in slots if s is not None}
        prepared.append((slots, found, raw))

    def one(item: tuple[Any, ...]) -> int:
        slots, found, raw = item
        more = plan.expand(found, slots, raw, at, store.salt)
        everything = {**found, **{s: series.get(s) or Series() for s in more}}
        return int(plan._linked(linked, everything, slots, raw, at, store.salt))

    per_round = [summarize(time_call(one, prepared, iterations, start=r * iterations)) for r in range(rounds)]
    stats: dict[str, Any] = median_of_rounds(per_round)
    return stats


def run_state_grpc(
    root: Path, data_root: Path, work: Path, project: Path, *, rows: int, warmup: int, requests: int, rounds: int,
    round_seconds: float, redis_url: str,
) -> list[dict[str, Any]]:
    """The ``state_grpc`` rows (see the module docstring)."""
    import redis

    from benchmarks.suite.grpc_cases import DECIDE, _loadgen
    from benchmarks.suite.loadgen import write_payloads
    from benchmarks.suite.server import ServeProcess
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    payloads = []
    for raw in card_rows(data_root, rows):
        message = pb.DecideRequest(flow=FLOW, version="2")
        message.input.update({k: v for k, v in raw.items() if k not in V1_ONLY})
        payloads.append(message.SerializeToString())
    file = write_payloads(work / "state-decide.bin", payloads)
    client = redis.Redis.from_url(redis_url)
    with ServeProcess(root, workdir=work / "serve-sqlite", project=project) as sqlite_server, \
            ServeProcess(root, workdir=work / "serve-redis", project=project, extra=("--state", redis_url)) as redis_server:
        methods = [
            {"name": kind, "path": DECIDE, "payloads": str(file), "check": "decide", "target": server.target, "server_pids": server.pids}
            for kind, server in (("v2_sqlite", sqlite_server), ("v2_redis", redis_server))
        ]
        spec = {"target": sqlite_server.target, "server_pids": sqlite_server.pids, "concurrency": 1, "channels": 1,
                "warmup": warmup, "requests": requests, "rounds": rounds, "round_seconds": round_seconds, "methods": methods}
        pings = [summarize(time_call(lambda _i: client.ping(), payloads, requests))]
        result = _loadgen(spec, project)
        pings.append(summarize(time_call(lambda _i: client.ping(), payloads, requests)))
    out = [{"name": "state_grpc", "flow": FLOW, "kind": kind, "concurrency": 1, **median_of_rounds(per_round),
            "errors": sum(int(r["errors"]) for r in per_round)} for kind, per_round in result["rounds"].items()]
    out.append({"name": "state_grpc", "flow": FLOW, "kind": "redis_ping", **median_of_rounds(pings)})
    by_kind = {row["kind"]: row for row in out}
    by_kind["v2_redis"]["added_in_pings_p50"] = round(
        (by_kind["v2_redis"]["p50_us"] - by_kind["v2_sqlite"]["p50_us"]) / by_kind["redis_ping"]["p50_us"], 2)
    return out
