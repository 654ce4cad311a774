"""What TLS, mutual TLS, tokens and authorization add to a call, against plaintext in the same run.

Four servers in this process serve the bundled policies (no decision log, no idempotency):
``plaintext`` (no security flags), ``tls`` (--tls-cert/--tls-key), ``mtls+authz`` (client
certificates required, authorization file) and ``tls+token+authz`` (bearer tokens, authorization
file). Certificates are made at start with ``cryptography`` (tests/pki.py). A client in its own
process (so that it does not share the server's interpreter) keeps one channel per server open
(the TLS handshake happens once, as with any long-lived client) and sends, round by round with
the modes alternating so that drift hits all alike, ``Ping`` (the transport alone) and ``Decide``
on real credit applications (data/credit_data.csv). Each call is timed; the report gives, per
mode, the median over rounds of p50/p99 in microseconds and the ratio to plaintext.

    python benchmarks/auth_overhead.py [--calls 2000] [--rounds 3] [--out results.json]

Results: docs/security.md, "What it costs".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("plaintext", "tls", "mtls+authz", "tls+token+authz")
METHODS = ("Ping", "Decide")
WARMUP = 200
AUTHZ = "callers:\n  alice:\n    decide: [credit_application]\n  lending-app:\n    decide: [credit_application]\n"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client(spec_path: str) -> None:
    """The client process: time every call, print {mode: {method: [[us, ...] per round]}} as JSON."""
    import grpc

    from engine.datasets import read_credit_applications
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

    spec = json.loads(Path(spec_path).read_text())
    pki = Path(spec["pki"])
    read = lambda name: (pki / name).read_bytes()  # noqa: E731
    channels = {
        "plaintext": grpc.insecure_channel(spec["targets"]["plaintext"]),
        "tls": grpc.secure_channel(spec["targets"]["tls"], grpc.ssl_channel_credentials(read("ca.pem"))),
        "mtls+authz": grpc.secure_channel(
            spec["targets"]["mtls+authz"], grpc.ssl_channel_credentials(read("ca.pem"), read("alice.key"), read("alice.pem"))
        ),
        "tls+token+authz": grpc.secure_channel(spec["targets"]["tls+token+authz"], grpc.ssl_channel_credentials(read("ca.pem"))),
    }
    metadata = {mode: None for mode in MODES}
    metadata["tls+token+authz"] = (("authorization", f"Bearer {spec['token']}"),)
    requests = []
    for data in read_credit_applications(ROOT / "data" / "credit_data.csv", 500):
        message = pb.DecideRequest(flow="credit_application")
        message.input.update(data)
        requests.append(message)
    ping = pb.PingRequest(payload=b"x" * 300)
    stubs = {mode: pb_grpc.DecisionServiceStub(ch) for mode, ch in channels.items()}

    def call(mode: str, method: str, i: int) -> None:
        stub = stubs[mode]
        if method == "Ping":
            stub.Ping(ping, timeout=10, metadata=metadata[mode])
        else:
            stub.Decide(requests[i % len(requests)], timeout=10, metadata=metadata[mode])

    for mode in MODES:
        for method in METHODS:
            for i in range(WARMUP):
                call(mode, method, i)
    out: dict[str, dict[str, list[list[float]]]] = {m: {k: [] for k in METHODS} for m in MODES}
    for r in range(spec["rounds"]):
        order = MODES if r % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            for method in METHODS:
                times = []
                for i in range(spec["calls"]):
                    start = time.perf_counter_ns()
                    call(mode, method, i)
                    times.append((time.perf_counter_ns() - start) / 1000.0)
                out[mode][method].append(times)
    print(json.dumps(out))


# Long (71 lines): one benchmark scenario (flags, servers per mode, measure, report) read top to bottom.
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per mode, method and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client)
        return 0

    from engine.grpc.server import start_server
    from engine.policy.loader import load_policies
    from engine.runtime.service import Decider
    from engine.settings import Settings
    from engine.tokens import add_token
    from tests.pki import make_pki

    work = Path(tempfile.mkdtemp(prefix="verdict-auth-bench-"))
    pki = make_pki(work / "pki")
    (work / "authz.yaml").write_text(AUTHZ)
    token = add_token(work / "tokens.yaml", "lending-app")
    tls = {"tls_cert": pki.path("server.pem"), "tls_key": pki.path("server.key")}
    configs: dict[str, dict[str, Any]] = {
        "plaintext": {},
        "tls": tls,
        "mtls+authz": {**tls, "tls_client_ca": pki.path("ca.pem"), "authz": work / "authz.yaml"},
        "tls+token+authz": {**tls, "auth_tokens": work / "tokens.yaml", "authz": work / "authz.yaml"},
    }
    decider = Decider(load_policies(ROOT))
    servers = {mode: start_server(Settings.load(env={}, port=0, root=ROOT, **cfg), decider) for mode, cfg in configs.items()}
    spec = {
        "pki": str(pki.dir), "token": token, "calls": args.calls, "rounds": args.rounds,
        "targets": {mode: f"127.0.0.1:{s.port}" for mode, s in servers.items()},
    }  # fmt: skip
    (work / "spec.json").write_text(json.dumps(spec))
    load_before = os.getloadavg()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, __file__, "--client", str(work / "spec.json")], capture_output=True, text=True, env=env)
    for s in servers.values():
        s.stop(1)
    decider.close()
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return 1
    raw = json.loads(done.stdout)
    results: dict[str, Any] = {}
    for mode in MODES:
        for method in METHODS:
            rounds = raw[mode][method]
            results.setdefault(mode, {})[method] = {
                "p50_us": statistics.median(_percentile(r, 0.50) for r in rounds),
                "p99_us": statistics.median(_percentile(r, 0.99) for r in rounds),
            }
    print(f"{'mode':<18} {'method':<7} {'p50 µs':>9} {'p99 µs':>9} {'p50 ×':>7} {'p99 ×':>7}")
    for mode in MODES:
        for method in METHODS:
            row, base = results[mode][method], results["plaintext"][method]
            row["p50_ratio"] = row["p50_us"] / base["p50_us"]
            row["p99_ratio"] = row["p99_us"] / base["p99_us"]
            print(f"{mode:<18} {method:<7} {row['p50_us']:>9.1f} {row['p99_us']:>9.1f} {row['p50_ratio']:>7.2f} {row['p99_ratio']:>7.2f}")
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    document = {
        "results": results, "calls": args.calls, "rounds": args.rounds, "commit": commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average": {"start": load_before, "end": os.getloadavg()},
    }  # fmt: skip
    print(f"load average: start {load_before}, end {document['load_average']['end']}")
    if args.out:
        args.out.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
