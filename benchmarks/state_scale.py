"""How the state stores scale with keys: memory per customer and one decision's latency at 10k-1M customers.

Each store (in-memory ``MemoryStore``, embedded ``SqliteStore``, ``RedisStore``) is populated with N
customers' histories as card_payment 3's ``behaviour:`` section leaves them: 2-5 payments per
customer over the last 28 days, one device each (a fifth of the customers also use their
neighbour's device: shared devices, so the linked and per-device streams hold several customers),
one card each (a tenth have a second). What is written is computed by the plan's own code
(``StatePlan.record`` / ``StatePlan.intent``) and written through the store's own write path in
large batches (``populate``):

- memory and SQLite: one ``StateStore.transact`` per batch of ``BATCH`` customers, whose step
  records the batch's payments in event-time order (SQLite: one write transaction, the serving
  ``_save`` upsert and JSON encoding per series);
- Redis: per payment, the ``READ`` script payload the serving path sends for an approved
  decision's deferred append (``RedisStore._payload(..., read=False)``: the same event encoding,
  TTLs and seen-sets), pipelined on the store's connection, the replies read once per batch.

Keys never cross a batch (a shared device is shared by customers ``2k`` and ``2k+1``), so the
batches' series are the series one-by-one decisions in event-time order leave (the smoke test
tests/unit/test_state_scale.py checks that).

Then, per size: memory per customer (``MemoryStore``: growth of the process's resident set;
SQLite: the file plus its WAL after a ``wal_checkpoint(TRUNCATE)``; Redis: ``INFO memory``
``used_memory`` growth of an emptied database), and the latency of one decision's state
transaction (``decide_with_state``: read card_payment 3's eight features, a constant evaluation,
record the payment) on ``--samples`` random existing customers and a tenth as many new ones, each
call alternated with the same call on a 10,000-customer store of the same kind (the baseline,
measured in the same run: trust the ratio, the machine is shared).

    .venv/bin/python benchmarks/state_scale.py --sizes 10000,100000,1000000 --stores memory,sqlite,redis [--samples 3000] [--out r.json]

``redis`` starts a ``redis-server`` on a free loopback port in a temporary directory (no
persistence) and stops it after; databases 1 (the size) and 2 (the 10,000 baseline).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics_cost import machine, report  # noqa: E402  (one way to stamp and write a result)
from engine.policy.loader import load_policies  # noqa: E402
from engine.state.plan import Slot, StatePlan  # noqa: E402
from engine.state.series import Series  # noqa: E402
from engine.state.sqlite import SqliteStore  # noqa: E402
from engine.state.store import MemoryStore, decide_with_state  # noqa: E402
from engine.types import Action, Outcome  # noqa: E402

BATCH = 2_000  # customers per bulk transaction (even: a shared device stays inside its batch)
DAY = 86_400.0
HISTORY_DAYS = 28.0
BASELINE = 10_000
Payment = tuple[float, dict[str, Any]]  # (event time, the fields the plan reads)
_DONE = Outcome(Action.APPROVE, (), (), {})


def card_plan() -> StatePlan:
    """card_payment 3's compiled ``behaviour:`` section."""
    plan = load_policies(ROOT).flows["card_payment"].versions["3"].state
    assert plan is not None
    return plan


def customer(i: int) -> str:
    return f"C{i:08d}"


def history(lo: int, hi: int, now: float, seed: int = 7) -> list[Payment]:
    """The payments of customers ``lo``..``hi - 1`` (see the module docstring), in event-time order;
    the same customers give the same payments whatever the batch."""
    out: list[Payment] = []
    for i in range(lo, hi):
        rng = random.Random(seed * 1_000_003 + i)
        cards = [f"4{i:015d}"] + ([f"5{i:015d}"] if rng.random() < 0.1 else [])
        devices = [f"D{i:08d}"] + ([f"D{i ^ 1:08d}"] if rng.random() < 0.2 else [])
        for _ in range(rng.randint(2, 5)):
            at = now - rng.random() * HISTORY_DAYS * DAY
            out.append((at, {
                "customer_id": customer(i), "device_id": rng.choice(devices), "card_number": rng.choice(cards),
                "amount": round(rng.lognormvariate(3.5, 1.0), 2),
            }))
    out.sort(key=lambda p: p[0])
    return out


def batches(n: int, now: float, size: int = BATCH, first: int = 0) -> Iterator[list[Payment]]:
    """The histories of customers ``first``..``first + n - 1``, ``size`` customers at a time (both even)."""
    assert first % 2 == 0 and size % 2 == 0, "a shared device (customers 2k and 2k+1) must stay inside its batch"
    for lo in range(first, first + n, size):
        yield history(lo, min(first + n, lo + size), now)


def populate(store: Any, plan: StatePlan, n: int, now: float, size: int = BATCH, first: int = 0) -> int:
    """Write the histories of customers ``first``..``first + n - 1`` into ``store`` through its own write
    path (module docstring); returns the payments written."""
    written = 0
    for payments in batches(n, now, size, first):
        if hasattr(store, "_wire"):
            _append_redis(store, plan, payments)
        else:
            _record_batch(store, plan, payments)
        written += len(payments)
    return written


def _record_batch(store: Any, plan: StatePlan, payments: list[Payment]) -> None:
    """One transaction recording ``payments`` (event-time order) as each decision would."""
    salt = store.salt
    work = [(at, values, plan.slots(values, salt)) for at, values in payments]
    slots = list(dict.fromkeys(s for _, _, sl in work for s in sl if s is not None))

    def step(found: dict[Slot, Series]) -> tuple[None, list[Slot]]:
        changed: dict[Slot, None] = {}
        for at, values, sl in work:
            changed.update(dict.fromkeys(plan.record(found, sl, values, at, salt)))
        return None, list(changed)

    store.transact(slots, step)


def _append_redis(store: Any, plan: StatePlan, payments: list[Payment]) -> None:
    """Per payment the serving path's append (``READ`` with ``r=0``), pipelined; replies read at the end."""
    from engine.state import redis_scripts as lua
    from engine.state.redis_store import _event

    salt = store.salt
    wire = store._wire
    for at, values in payments:
        slots = plan.slots(values, salt)
        intent = plan.intent(slots, values, at, salt, read=False)
        token = os.urandom(8).hex()
        appends = [(a, _event(a, token)) for a in intent.appends]
        payload = store._payload(list(dict.fromkeys(a.slot for a in intent.appends)), [], appends, intent.seen, read=False)
        wire.defer("append", lua.READ, [], [payload])
    wire.settle()
    if wire.failures:
        raise RuntimeError(f"Redis refused appends: {dict(wire.failures)}")


def decide_once(store: Any, plan: StatePlan, values: dict[str, Any], at: float) -> dict[str, Any]:
    """One decision's state transaction (read the features, a constant evaluation, record); its features."""
    return decide_with_state(store, plan, dict(values), at, lambda v: _DONE)[1]


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_us": round(s[len(s) // 2] * 1e6, 1), "p99_us": round(s[int(len(s) * 0.99)] * 1e6, 1)}


def latency(big: tuple[Any, int], small: tuple[Any, int], plan: StatePlan, samples: int, now: float) -> dict[str, Any]:
    """Decisions alternated between the store of N customers and the 10,000 baseline: existing customers
    (random) then new ones (a tenth as many); p50/p99 of each."""
    rng = random.Random(11)
    times: dict[str, list[float]] = {"existing": [], "existing_base": [], "new": [], "new_base": []}
    at = now + 60.0
    for j in range(samples + samples // 10):
        new = j >= samples
        for (store, n), label in ((big, "new" if new else "existing"), (small, "new_base" if new else "existing_base")):
            i = n + j if new else rng.randrange(n)
            values = {"customer_id": customer(i), "device_id": f"D{i:08d}", "card_number": f"4{i:015d}", "amount": 42.0}
            at += 0.001
            t0 = time.perf_counter()
            decide_once(store, plan, values, at)
            times[label].append(time.perf_counter() - t0)
    out: dict[str, Any] = {k: _percentiles(v) for k, v in times.items()}
    for k in ("existing", "new"):
        out[k]["ratio_p50"] = round(out[k]["p50_us"] / out[k + "_base"]["p50_us"], 2)
        out[k]["ratio_p99"] = round(out[k]["p99_us"] / out[k + "_base"]["p99_us"], 2)
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port (no persistence), stopped by ``stop``."""

    def __init__(self, work: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("the redis store needs redis-server (apt-get install -y redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.version = client.info("server")["redis_version"]

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _open(kind: str, name: str, work: Path, server: RedisServer | None, plan: StatePlan) -> Any:
    if kind == "memory":
        store: Any = MemoryStore(b"k" * 32)
    elif kind == "sqlite":
        store = SqliteStore(work / f"{name}.db")
    else:
        from engine.state.redis_store import RedisStore

        assert server is not None
        url = server.url(2 if name == "base" else 1)
        RedisStore(url)._redis.flushdb()
        store = RedisStore(url)
    store.retention.update({s.sig: s.retention for s in plan.streams})  # as Decider does
    return store


def _size_bytes(kind: str, store: Any) -> int:
    if kind == "sqlite":
        store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path = store.path
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return int(store._redis.info("memory")["used_memory"])


def measure(kind: str, sizes: list[int], samples: int, work: Path, server: RedisServer | None) -> list[dict[str, Any]]:
    """Per size: populate, bytes per customer, then the latency alternated with the 10,000 baseline."""
    plan = card_plan()
    now = time.time()
    base = _open(kind, "base", work, server, plan)
    populate(base, plan, BASELINE, now)
    rows = []
    for n in sizes:
        gc.collect()
        rss = _rss_bytes()
        store = _open(kind, f"n{n}", work, server, plan)
        before = _size_bytes(kind, store) if kind == "redis" else 0
        t0 = time.perf_counter()
        payments = populate(store, plan, n, now)
        seconds = time.perf_counter() - t0
        gc.collect()
        row: dict[str, Any] = {
            "store": kind, "customers": n, "payments": payments, "load": [round(x, 2) for x in os.getloadavg()],
            "populate_us_per_payment": round(seconds / payments * 1e6, 1),
        }
        if kind == "memory":
            row["series"] = len(store)
            row["bytes_per_customer"] = round((_rss_bytes() - rss) / n)
        else:
            row["bytes_per_customer"] = round((_size_bytes(kind, store) - before) / n)
            row["keys" if kind == "redis" else "series"] = store._redis.dbsize() if kind == "redis" else len(store)
        row["latency"] = latency((store, n), (base, BASELINE), plan, samples, now)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        store.close()
        del store
    base.close()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--stores", default="memory,sqlite,redis")
    p.add_argument("--samples", type=int, default=3000, help="existing customers decided on per size (and a tenth as many new)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind in args.stores.split(","):
            server = RedisServer(work) if kind == "redis" else None
            try:
                if server is not None:
                    result["redis_version"] = server.version
                result[kind] = measure(kind, sizes, args.samples, work, server)
            finally:
                if server is not None:
                    server.stop()
    return report(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
