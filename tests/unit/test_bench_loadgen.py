"""The load generator's server counters and the server processes' command lines (benchmarks/suite)."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

from benchmarks.suite.loadgen import _server_switches
from benchmarks.suite.server import ConfigServerProcess, ServeProcess


def test_server_switches_count_every_thread_of_the_process():
    """Context switches are summed over all live threads: a thread that sleeps and wakes adds to the total.

    Read while the thread still lives: Linux keeps a thread's counts in /proc/PID/task/TID only while
    it exists (the server's request and worker threads live as long as the server)."""
    before = _server_switches([os.getpid()])
    slept, done = threading.Event(), threading.Event()

    def work() -> None:
        for _ in range(20):
            threading.Event().wait(0.001)
        slept.set()
        done.wait(10)

    worker = threading.Thread(target=work)
    worker.start()
    assert slept.wait(10)
    after = _server_switches([os.getpid()])
    done.set()
    worker.join()
    assert before > 0
    assert after - before >= 20


def test_server_switches_of_a_gone_process_is_nan():
    """A server that has exited gives NaN, not a plausible zero."""
    assert math.isnan(_server_switches([2**22 + 12345]))


def test_serve_process_passes_threads_only_when_given(tmp_path: Path):
    """``threads`` becomes ``--threads N``; without it the server's own default applies."""
    default = ServeProcess(tmp_path, workdir=tmp_path, project=tmp_path).command()
    four = ServeProcess(tmp_path, workdir=tmp_path, project=tmp_path, threads=4).command()
    assert "--threads" not in default
    assert four[four.index("--threads") + 1] == "4"


def test_config_server_command_names_mode_threads_and_root(tmp_path: Path):
    """The candidate configuration server is started with its mode, thread count and policy root."""
    cmd = ConfigServerProcess(tmp_path / "root", mode="aio", threads=0, workdir=tmp_path, project=tmp_path).command()
    assert cmd[1:] == ["-m", "benchmarks.suite.config_server", "aio", "0", str(tmp_path / "root")]
