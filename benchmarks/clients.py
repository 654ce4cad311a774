"""Concurrent benchmark clients: ``threads`` threads released together, each timing its own calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["timed_clients"]


def timed_clients(threads: int, calls_of: Callable[[int], Iterable[Callable[[], object]]]) -> tuple[list[list[float]], float]:
    """Run the calls ``calls_of(k)`` on thread ``k`` for each k in ``range(threads)``.

    The threads start together (a barrier). Returns each thread's call latencies in microseconds
    (``time.perf_counter`` around each call alone) and the wall-clock seconds from the start to the
    end of the last thread.
    """
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def client(k: int) -> None:
        out = latencies[k]
        calls = calls_of(k)
        barrier.wait()
        for call in calls:
            t = time.perf_counter()
            call()
            out.append((time.perf_counter() - t) * 1e6)

    pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return latencies, time.perf_counter() - start
