"""Hostile inputs, one class at a time, each case in its own process under time and memory caps.

Run from the repository root:  python benchmarks/hostile.py [--timeout 10] [--memory-mib 1024]

Every case must end in a result or a clean MatdiffError (CLI exit 0, 1 or 2, no traceback,
no "internal error") within the caps. Prints, per class, the worst wall time and peak memory
(the child's max RSS), and exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _nest(fn: str, depth: int, inner: str = "x") -> str:
    return f"{fn}(" * depth + inner + ")" * depth


def _inv_nest(depth: int) -> str:
    text = "A"
    for _ in range(depth):
        text = f"inv(A + {text})"
    return text


# (class, [(argv after "matdiff", env overrides)]) -- the classes of issue 7
CLASSES: dict[str, list[list[str]]] = {
    "matrix powers": [["derive", "A^3000", "--wrt", "A"], ["derive", "A^100000", "--wrt", "A"],
                      ["derive", "tr(A^1000)", "--wrt", "A"],
                      ["derive", "tr(A^3000)", "--wrt", "A"],
                      ["derive", "x'*A^10000*x", "--wrt", "x"],
                      ["derive", "x'*A^10000*x", "--wrt", "A"],
                      ["derive", "A^102", "--wrt", "A"],
                      ["derive", "tr(A^26)", "--wrt", "A", "--order", "2"]],
    "nested inverses": [["derive", _inv_nest(15), "--wrt", "A"],
                        ["derive", f"tr({_inv_nest(20)})", "--wrt", "A"]],
    "long products": [["derive", "tr(" + "*".join(f"A{i}" for i in range(1000)) + ")", "--wrt",
                       "A7"],
                      ["derive", "tr(" + "*".join(f"A{i}" for i in range(3000)) + ")", "--wrt",
                       "A7"],
                      ["derive", "tr(" + "*".join(["A"] * 3000) + ")", "--wrt", "A"],
                      ["derive", "x'*" + "*".join(["A"] * 3000) + "*x", "--wrt", "x"],
                      ["derive", "*".join(f"(a + b{i})" for i in range(250)), "--wrt", "a"]],
    "deep functions order 2": [["derive", f"sum({_nest('sin', 100)})", "--wrt", "x", "--order",
                                "2"],
                               ["derive", f"sum({_nest('sin', 150)})", "--wrt", "x", "--order",
                                "2"],
                               ["derive", f"sum({_nest('sin', 199)})", "--wrt", "x", "--order",
                                "2"],
                               ["derive", _nest("sin", 198, "a"), "--wrt", "a"]],
    "products of functions order 2": [
        ["derive", "*".join(f"sin(a + {i})" for i in range(n)), "--wrt", "a", "--order", "2"]
        for n in (40, 100)],
    "checks of big arrays": [["derive", "x'*x", "--wrt", "x", "--declare", "x: vector(100000)",
                              "--check"],
                             ["derive", "tr(X)", "--wrt", "X", "--declare", "X: matrix(3000,3000)",
                              "--check"],
                             ["derive", "tr(" + "*".join(f"inv(A + {i}*B)" for i in range(1, 31))
                              + ")", "--wrt", "A", "--check"]],
    "huge numbers": [["derive", "((2^64)^64)^64^64*a", "--wrt", "a"],
                     ["derive", "(((2^64)^64)^64^64)^64*a", "--wrt", "a"],
                     ["derive", "9" * 5000 + "*a", "--wrt", "a"],
                     ["derive", "1e400*a", "--wrt", "a", "--check"],
                     ["derive", "(1e200)^2*a", "--wrt", "a", "--check"],
                     ["derive", "1e999999999*a", "--wrt", "a"]],
    "absurd declarations": [["derive", "x'*x", "--wrt", "x", "--declare",
                             "x: vector(1000000000000)"],
                            ["derive", "tr(eye + x*x')", "--wrt", "x", "--declare",
                             "x: vector(pi)"],
                            ["derive", "x'*x", "--wrt", "x", "--declare", "x: vector(inv)"],
                            ["derive", "x'*A*x", "--wrt", "x", "--declare", "x: vector(A)"],
                            ["derive", "x'*x", "--wrt", "x", "--declare", "x: vector(١٢)"]],
    "messages": [["derive", "x'*\x1b[31mA\x07*x", "--wrt", "x"],
                 ["derive", "x" * 99_000 + "#", "--wrt", "x"],
                 ["derive", "x'*x", "--wrt", ",".join(f"v{i}" for i in range(2000))],
                 ["derive", "-x'*x", "--wrt", "x"], ["derive", "١٢*a", "--wrt", "a"],
                 ["derive", "𝟐*a", "--wrt", "a"]],
    "encodings": [["derive", "A*x", "--wrt", "x", "@ascii"],
                  ["derive", "x'*A*x", "--wrt", "x", "--format", "unicode", "@ascii"]],
    "misleading checks": [["derive", "sin(1000*a)", "--wrt", "a", "--check"],
                          ["derive", "0*exp(" + "+".join(f"x'*A{i}*x" for i in range(50)) +
                           ") + 1e8*sum(exp(y))", "--wrt", "x", "--check"]],
}


def run_case(argv: list[str], timeout: float, memory_mib: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if argv[-1] == "@ascii":
        argv = argv[:-1]
        env["PYTHONIOENCODING"] = "ascii"

    def cap() -> None:
        limit = memory_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(argv)], env=env,
                              capture_output=True, timeout=timeout, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"ok": False, "why": "timeout", "seconds": timeout, "peak_mib": None}
    seconds = time.monotonic() - started
    err = done.stderr.decode("utf-8", "replace")
    lines = err.strip().splitlines()
    peak = float(lines[-1]) if lines and _is_number(lines[-1]) else None
    err = "\n".join(lines[:-1]) if peak is not None else err
    ok = done.returncode in (0, 1, 2) and "Traceback" not in err and "internal error" not in err
    why = "" if ok else f"exit {done.returncode}: {err[-300:]}"
    if ok and done.returncode == 1:
        why = "MISMATCH reported"
        ok = False  # every case here has a correct derivative: a mismatch is false
    return {"ok": ok, "why": why, "seconds": seconds, "peak_mib": peak,
            "exit": done.returncode, "out": done.stdout[:200].decode("utf-8", "replace"),
            "err": err[:200]}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# the child runs the CLI and reports its peak RSS as the last line of stderr
_CHILD = """
import json, resource, sys
from matdiff.cli import main
try:
    code = main(json.loads(sys.argv[1]))
finally:
    sys.stdout.flush()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--memory-mib", type=int, default=1024)
    parser.add_argument("--only", default=None, help="run the classes whose name contains this")
    parser.add_argument("-v", action="store_true", help="show every case")
    args = parser.parse_args()
    failed = 0
    print(f"{'class':32} {'cases':>5} {'worst s':>8} {'peak MiB':>9}  result")
    for name, cases in CLASSES.items():
        if args.only and args.only not in name:
            continue
        results = [run_case(argv, args.timeout, args.memory_mib) for argv in cases]
        bad = [(argv, r) for argv, r in zip(cases, results) if not r["ok"]]
        failed += len(bad)
        worst = max(r["seconds"] for r in results)
        peaks = [r["peak_mib"] for r in results if r["peak_mib"] is not None]
        peak = f"{max(peaks):9.0f}" if peaks else f"{'-':>9}"
        print(f"{name:32} {len(cases):>5} {worst:8.2f} {peak}  "
              f"{'ok' if not bad else f'{len(bad)} FAILED'}")
        for argv, r in (zip(cases, results) if args.v else bad):
            shown = " ".join(argv)
            shown = shown if len(shown) < 90 else shown[:87] + "..."
            print(f"    {shown!r}: {r['seconds']:.2f} s, exit {r.get('exit')}, "
                  f"{r['why'] or r['out'][:100] or r['err'][:100]!r}")
    print("all cases: a result or a clean error within the caps" if not failed
          else f"{failed} case(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
