"""Generated hostile inputs in bulk: every one ends in a result or a MatdiffError (API) and
in exit 0 or 2 without a traceback under a 1 GiB cap (CLI); seeds the test suite does not use.

Run from the repository root:  python benchmarks/hostile_counts.py [API_CASES] [CLI_CASES]
(default 1000 and 200; the API cases go 50 to a seed, the CLI cases 8 to a seed).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import test_hostile  # noqa: E402  (outcome() and the CLI child with its memory cap)
from hostile_inputs import generate  # noqa: E402


def api(cases: int) -> None:
    counts: collections.Counter = collections.Counter()
    worst, other = 0.0, []
    for seed in range(1000, 1000 + -(-cases // 50)):
        for case in generate(seed, 50):
            started = time.monotonic()
            try:
                counts[test_hostile.outcome(case)] += 1
            except Exception as err:  # anything but a MatdiffError is a bug
                other.append((case, repr(err)[:200]))
            worst = max(worst, time.monotonic() - started)
    print(f"API: {sum(counts.values()) + len(other)} inputs, {dict(counts)}, "
          f"other exceptions: {len(other)}, worst {worst:.1f} s")
    for case, err in other[:5]:
        print("  ", case, err)


def cli(cases: int) -> None:
    codes: collections.Counter = collections.Counter()
    worst, bad = 0.0, []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for seed in range(2000, 2000 + -(-cases // 8)):
        for case in generate(seed, 8):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-c", test_hostile.CHILD,
                                   json.dumps(case.argv()), str(test_hostile.MEMORY_MIB)],
                                  capture_output=True, timeout=30, env=env)
            worst = max(worst, time.monotonic() - started)
            err = done.stderr.decode("utf-8", "replace")
            codes[done.returncode] += 1
            if done.returncode not in (0, 2) or "Traceback" in err or "internal error" in err:
                bad.append((case.argv()[:3], done.returncode, err[-200:]))
    print(f"CLI: {sum(codes.values())} inputs, exit codes {dict(codes)}, "
          f"tracebacks or internal errors: {len(bad)}, worst {worst:.1f} s")
    for b in bad[:5]:
        print("  ", b)


if __name__ == "__main__":
    api(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    cli(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
