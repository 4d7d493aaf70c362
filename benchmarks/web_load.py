"""A bounded load test of ``matdiff serve`` on loopback: concurrent clients for a fixed time,
mixing valid, invalid and pathological requests.

Run from the repository root (needs the web extra):

    python benchmarks/web_load.py [--clients 50] [--seconds 60] [--workers N] [--think 0.5]

It starts ``matdiff serve --port 0`` itself, measures the baseline (one valid request at a time
on the idle server, median of 9), then runs the clients: each sends a request, waits for its
answer (at most --hung seconds: past that it counts as hung), thinks a random 0..2*think
seconds (a person typing; 0 for a closed loop) and goes again, until the time is up. Every
request goes to 127.0.0.1 only. It prints p50/p99 latency per kind and as a ratio to the
baseline, the status codes, 5xx and hung counts, the server's and the workers' memory at
start and end (resident set, interned IR nodes), what the pool did (workers killed for time,
retired for age) and the machine's load average. Exit status 1 on any 5xx or hung request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_REQUESTS_PER_CLIENT = 10_000  # a bound besides the time
UNCHECKED: list[int] = []  # appended to from the client threads (list.append is atomic)

VALID = [  # (template, wrt, options): {n} makes each variant a distinct request
    ("(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m{n})'*inv(S)*(x - m{n}))", "S",
     {"declare": "S: symmetric posdef matrix(k,k); x, m{n}: vector(k); k: scalar"}),
    ("x'*A{n}*x + {c}*sin(a)", "x", {}),
    ("x'*A{n}*x", "x", {"order": 2}),
    ("tr(X'*B{n}*X)", "X", {"layout": "numerator"}),
    ("log(det(X{n})) + {c}*tr(X{n})", "X{n}", {"declare": "X{n}: symmetric posdef matrix"}),
    ("sum(exp(W{n}*x))/{c}", "x", {}),
    ("norm2(T - U*V{n}')^2", "U", {}),
    ("inv(X{n})", "X{n}", {}),
    (r"\frac{{1}}{{2}} \mathbf{{x}}^T A_{{{n}}} \mathbf{{x}} + {c}", "x", {}),
]
INVALID = [  # bodies and requests the server refuses (4xx)
    b"not json", b"{", b"[]", b'{"expr": NaN, "wrt": "x"}', b'{"expr": 5, "wrt": "x"}',
    b'{"expr": "x", "wrt": "x", "colour": 1}', b'{"expr": "x\'*A*+x", "wrt": "x"}',
    b'{"expr": "x + A", "wrt": "x"}', b'{"expr": "x\'*x", "wrt": "q"}',
    b'{"expr": "x", "wrt": "x", "order": 99}', b'{"expr": "' + b"x" * 70_000 + b'"}',
]
PATHOLOGICAL = [  # valid requests that would take long or grow large: the limits end them
    ("sum(sin(A{n}*tanh(B*sin(C*tanh(D*x)))))", "x", {"order": 4}),
    ("exp(" * 190 + "x{n}" + ")" * 190, "x{n}", {}),
    ("sum(exp(" * 60 + "x{n}" + "))" * 60, "x{n}", {"order": 2}),
    ("x'*" + "*".join(f"A{i}" for i in range(600)) + "*y{n}", "y{n}", {}),
]


def request_for(kind: str, rng: random.Random, distinct: int) -> tuple[str, bytes]:
    """(endpoint, body) of one request of ``kind``."""
    if kind == "invalid":
        return "derive", rng.choice(INVALID)
    pool = VALID if kind == "valid" else PATHOLOGICAL
    template, wrt, options = rng.choice(pool)
    n = rng.randrange(distinct) if kind == "valid" else rng.randrange(10**9)
    fill = {"n": n, "c": 1 + n % 7}
    body = {"expr": template.format(**fill), "wrt": wrt.format(**fill)}
    body.update({k: v.format(**fill) if isinstance(v, str) else v for k, v in options.items()})
    endpoint = "derive"
    if kind == "valid" and rng.random() < 0.25:  # the page also asks for these
        endpoint = rng.choice(["variables", "source"])
        if endpoint == "variables":
            body = {k: body[k] for k in ("expr", "declare") if k in body}
    return endpoint, json.dumps(body).encode()


def send(port: int, endpoint: str, body: bytes, hung: float) -> tuple[int | None, float]:
    """(status or None if hung/failed, seconds); a derivation whose numerical check gave way
    to the time limit is counted in UNCHECKED."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=hung)
    try:
        connection.request("POST", f"/api/{endpoint}", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if endpoint == "derive" and response.status == 200 and \
                json.loads(answer).get("check_error"):
            UNCHECKED.append(1)
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - started
    finally:
        connection.close()


def status_of(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/api/status")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def memory_line(label: str, pid: int, status: dict) -> str:
    workers = ", ".join(f"{w['rss_mib']:.0f} MiB / {w['interned_nodes']} nodes"
                        for w in status["workers"])
    return (f"{label}: server {rss_mib(pid):.1f} MiB (cache {status['cache']['entries']} "
            f"answers, {status['cache']['bytes'] / 2**20:.1f} MiB); workers: {workers}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--think", type=float, default=0.5,
                        help="mean pause between a client's requests (s)")
    parser.add_argument("--mix", default="70,22,8", help="percent valid,invalid,pathological")
    parser.add_argument("--distinct", type=int, default=400,
                        help="variants of each valid template (the cache sees repeats)")
    parser.add_argument("--hung", type=float, default=120.0,
                        help="seconds after which a request counts as hung")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    weights = [float(w) for w in args.mix.split(",")]

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
    command = [sys.executable, "-m", "matdiff", "serve", "--port", "0"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env)
    try:
        line = server.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        load_before = os.getloadavg()
        rng = random.Random(args.seed)
        baseline = []
        for _ in range(9):
            status, seconds = send(port, *request_for("valid", rng, 10**9), hung=args.hung)
            baseline.append(seconds)
        base = statistics.median(baseline)
        start_status = status_of(port)
        start_memory = memory_line("memory at start", server.pid, start_status)

        results: dict[str, list[tuple[int | None, float]]] = defaultdict(list)
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client(number: int) -> None:
            mine = random.Random(args.seed * 1000 + number)
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= deadline:
                    return
                kind = mine.choices(["valid", "invalid", "pathological"], weights)[0]
                outcome = send(port, *request_for(kind, mine, args.distinct), hung=args.hung)
                with lock:
                    results[kind].append(outcome)
                time.sleep(mine.uniform(0, 2 * args.think))

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as clients:
            list(clients.map(client, range(args.clients)))
        took = time.monotonic() - started
        end_status = status_of(port)
        end_memory = memory_line("memory at end", server.pid, end_status)
        load_after = os.getloadavg()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    every = [r for outcomes in results.values() for r in outcomes]
    codes = Counter(code for code, _ in every)
    hung = codes.pop(None, 0)
    errors_5xx = sum(n for code, n in codes.items() if code >= 500)
    print(f"{args.clients} clients for {took:.0f} s on 127.0.0.1, think {args.think:g} s, "
          f"mix valid/invalid/pathological {args.mix} %, workers "
          f"{len(start_status['workers'])}, {os.cpu_count()} CPUs")
    print(f"machine load average (1, 5, 15 min): before {load_before[0]:.1f} "
          f"{load_before[1]:.1f} {load_before[2]:.1f}, after {load_after[0]:.1f} "
          f"{load_after[1]:.1f} {load_after[2]:.1f}")
    print(f"baseline: one valid request on the idle server, median of 9: {base * 1000:.0f} ms")
    print(f"{'kind':<13} {'requests':>8} {'p50 s':>7} {'p99 s':>7} {'p50/base':>9} "
          f"{'p99/base':>9}  statuses")
    for kind in ("valid", "invalid", "pathological"):
        outcomes = results.get(kind, [])
        times = [s for _, s in outcomes]
        kinds = Counter(code for code, _ in outcomes)
        shown = " ".join(f"{code}:{n}" for code, n in sorted(kinds.items(), key=str))
        print(f"{kind:<13} {len(outcomes):>8} {percentile(times, .5):>7.2f} "
              f"{percentile(times, .99):>7.2f} {percentile(times, .5) / base:>9.1f} "
              f"{percentile(times, .99) / base:>9.1f}  {shown}")
    times = [s for _, s in every]
    print(f"{'all':<13} {len(every):>8} {percentile(times, .5):>7.2f} "
          f"{percentile(times, .99):>7.2f} {percentile(times, .5) / base:>9.1f} "
          f"{percentile(times, .99) / base:>9.1f}  ({len(every) / took:.1f} requests/s)")
    print(f"5xx: {errors_5xx}   hung (no answer within {args.hung:g} s): {hung}   "
          f"derivatives whose check gave way to the time limit: {len(UNCHECKED)}")
    print(start_memory)
    print(end_memory)
    print(f"pool: {end_status['requests']} requests to workers, {end_status['killed']} workers "
          f"killed for time, {end_status['retired']} retired, {end_status['died']} died, "
          f"{end_status['busy']} busy answers, {end_status['lowered']} run under a lowered "
          f"time limit; cache hits {end_status['cache']['hits']}")
    return 1 if errors_5xx or hung else 0


if __name__ == "__main__":
    sys.exit(main())
