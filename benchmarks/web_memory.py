"""Memory of one web worker over many distinct requests (what a long-running server does).

Run from the repository root:  python benchmarks/web_memory.py [COUNT]

Answers COUNT (default 1,000) distinct valid requests of benchmarks/web_load.py's mix the way
a worker does (matdiff.web.service.answer, in this process) and prints the resident set and
the number of interned IR nodes every 100 (after a garbage collection): both must level off,
since nothing a request builds outlives it. The baseline is the reading after the first 100;
exit status 1 when the growth from it to the end is over 20 MiB.
"""

from __future__ import annotations

import gc
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from web_load import request_for  # noqa: E402

import matdiff  # noqa: E402
from matdiff.web import schema, service  # noqa: E402

GOAL_MIB = 20.0


def main(count: int) -> int:
    matdiff.limits(seconds=schema.Settings().seconds)
    settings, rng = schema.Settings(), random.Random(1)
    baseline = None
    print(f"{'requests':>9}  {'RSS MiB':>8}  {'interned nodes':>14}")
    for n in range(1, count + 1):
        endpoint, body = request_for("valid", rng, 10**9)
        status, _ = service.answer(endpoint, schema.validated(endpoint, json.loads(body),
                                                              settings))
        if n % 100 == 0 or n == count:
            gc.collect()
            m = service.memory()
            baseline = baseline or m["rss_mib"]
            print(f"{n:>9}  {m['rss_mib']:>8.1f}  {m['interned_nodes']:>14}")
    growth = service.memory()["rss_mib"] - baseline
    print(f"growth after the first 100: {growth:.1f} MiB (goal under {GOAL_MIB:g})")
    return 1 if growth > GOAL_MIB else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000))
