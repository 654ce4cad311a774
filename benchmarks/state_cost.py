"""What stateful features cost: per decision, and in memory/disk per key.

Cases, each against a baseline measured in the same run (trust the ratios; the machine is shared):

- ``decide``: in-process ``Decider.decide`` of real card payments (data/card_payments.csv, 2,000
  rows cycled) through card_payment version 1 (the caller sends the counters: the baseline),
  version 2 with its features in memory (``MemoryStore``) and version 2 with the embedded SQLite
  store of ``verdict serve`` (a file in a temporary directory). Version 2's payments are spread
  over the rows' customers and devices, with the server's clock as event time.
- ``redis`` (with ``--redis URL``): version 2 with its features in Redis (engine.state.redis_store:
  one MGET and one compare-and-set script per decision) against the memory store, and a bare
  ``PING`` round trip to the same Redis in the same run: the cost Redis adds per decision in
  PING round trips (target: at most 1.5).
- ``keys``: one payment for each of N customers (10,000, 100,000 and ``--max-keys``) recorded
  through card_payment v2's plan (its three streams: per customer, per customer and device, per
  device), without the model: resident memory added per key with ``MemoryStore``, and bytes per
  key of the SQLite file (after a checkpoint), Redis ``used_memory`` per key (``--stores redis``: the
  database of ``--redis`` is emptied first), with the time per recorded payment.

    python benchmarks/state_cost.py [--iterations 5000] [--max-keys 1000000] [--redis redis://127.0.0.1:6379/0] [--out r.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.privacy_cost import timed  # noqa: E402  (p50/p99 of a call, median of rounds: one timer for both)
from engine.datasets import read_card_payments  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402
from engine.state.sqlite import SqliteStore  # noqa: E402
from engine.state.store import MemoryStore, StateStore  # noqa: E402

V1_ONLY = ("txn_count_1h", "txn_count_24h", "amount_avg_30d", "new_device")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def decide_case(iterations: int, work: Path) -> dict[str, Any]:
    """card_payment v1 (counters sent) against v2 (computed), in memory and in SQLite."""
    policies = load_policies(ROOT)
    rows = read_card_payments(ROOT / "data" / "card_payments.csv", 2000)
    v2_rows = [{k: v for k, v in r.items() if k not in V1_ONLY} for r in rows]
    out: dict[str, Any] = {}

    def run(label: str, version: str, inputs: list[dict[str, Any]], store: StateStore | None) -> None:
        decider = Decider(policies, state=store)
        out[label] = timed(lambda i: decider.decide("card_payment", inputs[i % len(inputs)], version=version), iterations)
        decider.close()

    run("v1_counters_sent", "1", rows, None)
    run("v2_memory", "2", v2_rows, MemoryStore(b"k" * 32))
    run("v2_sqlite", "2", v2_rows, SqliteStore(work / "decide.db"))
    base = out["v1_counters_sent"]
    for label in ("v2_memory", "v2_sqlite"):
        out[label]["ratio_p50"] = round(out[label]["p50_us"] / base["p50_us"], 2)
        out[label]["ratio_p99"] = round(out[label]["p99_us"] / base["p99_us"], 2)
    return out


def redis_case(iterations: int, url: str) -> dict[str, Any]:
    """Decisions with the Redis store against the memory store, and a bare PING, in one run."""
    import redis

    from engine.state.redis_store import RedisStore

    policies = load_policies(ROOT)
    rows = read_card_payments(ROOT / "data" / "card_payments.csv", 2000)
    inputs = [{k: v for k, v in r.items() if k not in V1_ONLY} for r in rows]
    out: dict[str, Any] = {}
    client = redis.Redis.from_url(url)
    out["ping"] = timed(lambda i: client.ping(), iterations)
    for label, store in (("v2_memory", MemoryStore(b"k" * 32)), ("v2_redis", RedisStore(url))):
        decider = Decider(policies, state=store)
        out[label] = timed(lambda i, d=decider: d.decide("card_payment", inputs[i % len(inputs)], version="2"), iterations)
        decider.close()
    added = out["v2_redis"]["p50_us"] - out["v2_memory"]["p50_us"]
    out["added_p50_us"] = round(added, 1)
    out["added_in_pings_p50"] = round(added / out["ping"]["p50_us"], 2)
    return out


def record_one(store: Any, plan: Any, values: dict[str, Any], at: float) -> None:
    """Record one payment in every stream of ``plan`` (no read, no model): the state's own cost, through
    the path a decision takes (with its intent: one round trip on Redis)."""
    slots = plan.slots(values, store.salt)

    def step(series: Any) -> tuple[None, Any]:
        return None, plan.record(series, slots, values, at, store.salt)

    store.transact([s for s in slots if s is not None], step, None, lambda: plan.intent(slots, values, at, store.salt))


def _fresh_redis(url: str | None) -> Any:
    """A Redis store on an emptied database of ``url`` (the keys case measures what it adds)."""
    from engine.state.redis_store import RedisStore

    if not url:
        raise SystemExit("the keys case's redis store needs --redis URL (its database is emptied)")
    store = RedisStore(url)
    store._redis.flushdb()
    return RedisStore(url)


def keys_case(counts: list[int], work: Path, stores: list[str], redis_url: str | None = None) -> list[dict[str, Any]]:
    """Memory and disk per key as the number of customers grows."""
    plan = load_policies(ROOT).flows["card_payment"].versions["2"].state
    assert plan is not None
    base = {"amount": 42.0, "card_number": "4111111111111111"}
    out = []
    for n in counts:
        for kind in stores:
            gc.collect()
            before = _rss_bytes()
            if kind == "redis":
                store: Any = _fresh_redis(redis_url)
                used = store._redis.info("memory")["used_memory"]
            else:
                store = MemoryStore(b"k" * 32) if kind == "memory" else SqliteStore(work / f"keys-{n}.db")
            t0 = time.perf_counter()
            for i in range(n):
                values = {**base, "customer_id": f"C{i:07d}", "device_id": f"D{i // 3:07d}"}
                record_one(store, plan, values, 1_800_000_000.0 + i)
            seconds = time.perf_counter() - t0
            row: dict[str, Any] = {"customers": n, "store": kind, "us_per_payment": round(seconds / n * 1e6, 1)}
            if kind == "memory":
                row["series"] = len(store)
                row["rss_bytes_per_customer"] = round((_rss_bytes() - before) / n)
            elif kind == "redis":
                row["redis_keys"] = store._redis.dbsize()
                row["used_memory_bytes_per_customer"] = round((store._redis.info("memory")["used_memory"] - used) / n)
                store.close()
            else:
                conn = store._connect()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row["series"] = len(store)
                row["file_bytes_per_customer"] = round((work / f"keys-{n}.db").stat().st_size / n)
                store.close()
                t1 = time.perf_counter()  # start-up: open the file and decide on one key (nothing is rebuilt)
                reopened = SqliteStore(work / f"keys-{n}.db")
                record_one(reopened, plan, {**base, "customer_id": "C0000000", "device_id": "D0000000"}, 1_800_000_100.0)
                row["reopen_and_first_payment_ms"] = round((time.perf_counter() - t1) * 1000, 1)
                reopened.close()
            out.append(row)
            print(json.dumps(row), file=sys.stderr)
            del store
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--max-keys", type=int, default=1_000_000)
    p.add_argument("--redis", metavar="URL", help="also measure the Redis store against a bare PING on this server")
    p.add_argument("--cases", default="decide,redis,keys", help="comma-separated subset of decide, redis, keys")
    p.add_argument("--stores", default="memory,sqlite", help="stores of the keys case (memory, sqlite, redis: empties --redis's database)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cases = set(args.cases.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
            "decide": decide_case(args.iterations, work) if "decide" in cases else None,
            "redis": redis_case(args.iterations, args.redis) if args.redis and "redis" in cases else None,
            "keys": keys_case(sorted({10_000, 100_000, args.max_keys}), work, args.stores.split(","), args.redis) if "keys" in cases else None,
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
