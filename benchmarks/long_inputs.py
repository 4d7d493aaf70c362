"""Long products, powers and nestings: seconds for derive + r.text, each round in a fresh process
(nothing interned from an earlier case), with the median and spread over rounds.

Run from the repository root:  python benchmarks/long_inputs.py [--rounds 5] [--only NAME]

Issue 7 asks for `A^3000` and 3,000-factor products under 2 s. Each round also times a small
baseline derivation (x'*A*x) in the same process, so that a loaded machine shows as a larger
baseline rather than as a slower case: the ratio column is case / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES: dict[str, tuple[str, str, int]] = {
    "product of 3,000 distinct": ("*".join(f"A{i}" for i in range(3000)), "A7", 1),
    "tr of 3,000 distinct": ("tr(" + "*".join(f"A{i}" for i in range(3000)) + ")", "A7", 1),
    "A^3000 wrt A": ("A^3000", "A", 1),
    "tr(A^3000)": ("tr(A^3000)", "A", 1),
    "tr(A*...*A), 3,000": ("tr(" + "*".join(["A"] * 3000) + ")", "A", 1),
    "x'*A*...*A*x, 3,000": ("x'*" + "*".join(["A"] * 3000) + "*x", "x", 1),
    "product of 250 sums": ("*".join(f"(a + b{i})" for i in range(250)), "a", 1),
    "sin nested 60, order 2": ("sum(" + "sin(" * 60 + "x" + ")" * 60 + ")", "x", 2),
    "product of 40 sin, order 2": ("*".join(f"sin(a + {i})" for i in range(40)), "a", 2),
}

_CHILD = """
import json, sys, time
import matdiff
expr, wrt, order = json.loads(sys.argv[1])
with matdiff.limits(seconds=600):
    t = time.perf_counter()
    matdiff.derive("x'*A*x", "x").text
    base = time.perf_counter() - t
    t = time.perf_counter()
    r = matdiff.derive(expr, wrt, order=order)
    derived = time.perf_counter() - t
    text = r.text
    total = time.perf_counter() - t
print(json.dumps({"base": base, "derive": derived, "total": total, "chars": len(text)}))
"""


def run(expr: str, wrt: str, order: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([expr, wrt, order])],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=None, help="the cases whose name contains this")
    args = parser.parse_args()
    print(f"{'case':28} {'derive s':>9} {'+ text s':>9} {'spread':>13} {'x base':>7} "
          f"{'chars':>8}")
    for name, (expr, wrt, order) in CASES.items():
        if args.only and args.only not in name:
            continue
        rounds = [run(expr, wrt, order) for _ in range(args.rounds)]
        totals = [r["total"] for r in rounds]
        ratio = statistics.median(r["total"] / r["base"] for r in rounds)
        print(f"{name:28} {statistics.median(r['derive'] for r in rounds):9.2f} "
              f"{statistics.median(totals):9.2f} {min(totals):6.2f}-{max(totals):<6.2f} "
              f"{ratio:7.0f} {rounds[0]['chars']:8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
