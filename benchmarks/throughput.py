"""Spans per second through the local runner, and per core of its CPU.

    python -m benchmarks.throughput [--clients 4] [--seconds 10]

The runner (``python -m skewgate_tools.local.run``: the same handlers as the functions) and
DynamoDB Local run as their own processes on this machine; ``--clients`` threads here POST
512-span OTel-JS-shaped JSON batches back to back, each a new batch (fresh trace ids) of one of
200 sessions, with ``X-Sent-At``. Reported: acknowledged spans per second, the CPU seconds the
runner and DynamoDB Local each spent per second, and spans per CPU-second of the runner (what
one Lambda core would sustain, without DynamoDB's side). Everything shares this machine's
cores, the clients included, so the per-core figure is the one to compare across machines.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import otel_js_body  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _TICKS


def template(spans: int) -> tuple[bytes, float]:
    """A batch whose trace ids start ``feedface`` and whose session is ``tp-0000``."""
    body, sent = otel_js_body(spans, session="tp-0000")
    return re.sub(rb'"traceId":"[0-9a-f]{8}', b'"traceId":"feedface', body), sent


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"local runner exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"local runner did not listen:\n{log.read_text()}") from None
            time.sleep(0.1)


def run(clients: int, seconds: float, spans: int = 512) -> dict[str, float]:
    from skewgate_tools.local import dynamodb as ddb

    base, _ = template(spans)
    counter = iter(range(1, 1 << 31))
    lock = threading.Lock()
    stored = [0]
    failed: list[str] = []
    dynamodb_port = ddb.free_port()
    dynamodb = ddb.start_dynamodb_local(dynamodb_port, repo_root=ROOT)
    endpoint = ddb.endpoint_url(dynamodb_port)
    try:
        port = ddb.free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"skewgate-throughput-{port}.log"
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "PORT": str(port),
               "TABLE_NAME": "throughput", "LOG_LEVEL": "WARNING", "FORWARD_TARGET": "none",
               "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
               "AWS_REGION": "us-east-1"}
        with log.open("wb") as out:
            runner = subprocess.Popen([sys.executable, "-m", "skewgate_tools.local.run"],
                                      env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, runner, log)
            java = dynamodb.pid
            stop = threading.Event()

            def client() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while not stop.is_set():
                    with lock:
                        n = next(counter)
                    body = base.replace(b'"feedface', b'"%08x' % n).replace(
                        b'"tp-0000"', b'"tp-%04d"' % (n % 200))
                    sent = time.time() * 1000 + 800  # the browser's clock is 800 ms ahead
                    conn.request("POST", "/v1/traces", body, {
                        "Content-Type": "application/json", "X-Sent-At": repr(sent)})
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        with lock:
                            stored[0] += spans
                    else:
                        failed.append(str(response.status))

            threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
            warm = threading.Thread(target=client, daemon=True)
            stop_warm = time.monotonic() + 2
            warm.start()
            while time.monotonic() < stop_warm:
                time.sleep(0.05)
            stop.set()
            warm.join()
            stop.clear()
            stored[0] = 0
            runner_cpu0, java_cpu0 = cpu_seconds(runner.pid), cpu_seconds(java)
            started = time.monotonic()
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            runner_cpu = cpu_seconds(runner.pid) - runner_cpu0
            java_cpu = cpu_seconds(java) - java_cpu0
        finally:
            runner.terminate()
            runner.wait(timeout=10)
    finally:
        ddb.stop_dynamodb_local(dynamodb)
    if failed:
        raise SystemExit(f"{len(failed)} requests failed: {sorted(set(failed))}")
    return {
        "spans_per_s": stored[0] / elapsed,
        "runner_cores": runner_cpu / elapsed,
        "dynamodb_cores": java_cpu / elapsed,
        "spans_per_runner_cpu_s": stored[0] / runner_cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    figures = run(args.clients, args.seconds)
    print(f"{args.clients} clients × 512-span JSON batches for {args.seconds:.0f} s against the "
          f"local runner and DynamoDB Local, on {os.cpu_count()} cores shared by all:\n")
    print("| spans/s acknowledged | runner CPU (cores) | DynamoDB Local CPU (cores) "
          "| spans per runner CPU-second |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {figures['spans_per_s']:,.0f} | {figures['runner_cores']:.2f} | "
          f"{figures['dynamodb_cores']:.2f} | {figures['spans_per_runner_cpu_s']:,.0f} |")


if __name__ == "__main__":
    main()
