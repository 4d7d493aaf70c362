"""The derivation benchmark against an older matdiff, measured in the same run.

Run from the repository root:  python benchmarks/bench_regression.py [--baseline REV] [--rounds 5]

``REV`` (a commit, tag or branch; default the commit before the linear-map and bounded-input
work) is exported with ``git archive`` into a temporary folder. Each round runs the two
cases of ``bench_derive.py`` (the Gaussian density by S, the generated ~1,000-node expression
by x; fresh variable names each run, ``r.text`` included) once in a child process for the
baseline and once for this checkout, alternating, so both see the same machine load. Prints
per case the median over rounds of each side's median, the spread (min-max over rounds) and
the ratio this/baseline; exits 1 if a case is more than ``--tolerance`` (default 10%) slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "29e7ce4"  # before issues 5 and 7 (the layout move was their first commit)

# The child imports matdiff from its PYTHONPATH first, so bench_derive (which puts this
# checkout's src first on sys.path) reuses that module: the cases are this checkout's.
CHILD = """
import json, statistics, sys
import matdiff
sys.path.insert(0, {benchmarks!r})
import bench_derive as b
gauss = b.time_derive(b.GAUSSIAN, "S", b.GAUSSIAN_DECLARE, b.GAUSSIAN_NAMES, {gauss_runs})
large = b.large_expression()
big = b.time_derive(large.text, "x", b.LARGE_DECLARE, b.LARGE_NAMES, {large_runs})
print(json.dumps({{"gaussian": gauss.fresh_s, "large": big.fresh_s, "file": matdiff.__file__}}))
"""


def export(revision: str, into: Path) -> Path:
    """The ``src`` folder of ``revision``, written under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"],
                             capture_output=True, check=False)
    if archive.returncode:
        sys.exit(f"cannot export {revision!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(src: Path, gauss_runs: int, large_runs: int) -> dict:
    code = CHILD.format(benchmarks=str(ROOT / "benchmarks"), gauss_runs=gauss_runs,
                        large_runs=large_runs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)}, check=False)
    if done.returncode:
        sys.exit(f"the benchmark failed with {src}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gaussian-runs", type=int, default=20)
    parser.add_argument("--large-runs", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sides = {"baseline": export(args.baseline, Path(folder)), "this": ROOT / "src"}
        rows: dict[str, dict[str, list[float]]] = {side: {"gaussian": [], "large": []}
                                                   for side in sides}
        for round_ in range(args.rounds):
            for side, src in (sides.items() if round_ % 2 == 0 else
                              reversed(list(sides.items()))):
                timing = measure(src, args.gaussian_runs, args.large_runs)
                for case in ("gaussian", "large"):
                    rows[side][case].append(timing[case])
    print(f"baseline {args.baseline} against this checkout, {args.rounds} rounds alternating; "
          "each figure a median over fresh-name runs (r.text included)\n")
    print(f"{'case':<18}{'baseline':>28}{'this':>28}{'ratio':>8}")
    slower = False
    for case, label in (("gaussian", "Gaussian d/dS"), ("large", "1,000-node d/dx")):
        base, this = rows["baseline"][case], rows["this"][case]
        ratio = statistics.median(this) / statistics.median(base)
        slower |= ratio > 1 + args.tolerance

        def cell(values: list[float]) -> str:
            return (f"{statistics.median(values) * 1e3:.1f} ms "
                    f"({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})")

        print(f"{label:<18}{cell(base):>28}{cell(this):>28}{ratio:>7.2f}x")
    print(f"\n(min-max over rounds in parentheses; tolerance {args.tolerance:.0%})")
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
