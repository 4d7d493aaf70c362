"""Memory over many distinct derivations in one process (what a long-running server does).

Run from the repository root:  python benchmarks/bench_memory.py [COUNT]

Derives COUNT (default 20,000) distinct expressions, printing each result, and reports the
resident set size after the first 1,000 (the baseline: imports, parser tables, warm caches)
and every 2,000 after; the goal is growth under 20 MiB from the baseline to the end.
Exit status 1 when the growth is over that.
"""

from __future__ import annotations

import gc
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import matdiff  # noqa: E402
from matdiff.core.ir import Expr  # noqa: E402

GOAL_MIB = 20.0
BASELINE_AT = 1_000
TEMPLATES = (
    "x'*A{k}*x + {c}*sin(a{k})", "tr(inv(S{k})*B) + {c}*logdet(S{k})",
    "sum(exp({c}*W{k}*x)) - norm2(x - y{k})^2", "(2*pi)^(-b/2)*det(S{k})^(-1/2)*exp(-{c}*x'*x)",
    "log(1 + exp(-y{k}'*X*w)) + {c}*w'*w",
)


def rss_mib() -> float:
    """The current resident set size (Linux /proc; elsewhere the peak, an upper bound)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def derivation(n: int) -> tuple[str, str]:
    template = TEMPLATES[n % len(TEMPLATES)]
    text = template.format(k=n, c=f"{1 + n % 97}/{2 + n % 89}")
    wrt = {0: "x", 1: f"S{n}", 2: "x", 3: f"S{n}", 4: "w"}[n % len(TEMPLATES)]
    return text, wrt


def main(count: int) -> int:
    baseline = None
    print(f"{'derivations':>12}  {'RSS MiB':>8}  {'interned nodes':>14}")
    for n in range(count):
        text, wrt = derivation(n)
        r = matdiff.derive(text, wrt)
        _ = r.text
        if n + 1 == BASELINE_AT or (n + 1) % 2_000 == 0 or n + 1 == count:
            gc.collect()
            rss = rss_mib()
            if n + 1 == BASELINE_AT:
                baseline = rss
            print(f"{n + 1:>12,}  {rss:>8.1f}  {len(Expr._interned):>14,}")
    if baseline is None:
        return 0
    growth = rss - baseline
    verdict = "ok" if growth < GOAL_MIB else "OVER"
    print(f"growth after the first {BASELINE_AT:,}: {growth:.1f} MiB (goal < {GOAL_MIB:g} MiB): "
          f"{verdict}")
    return 0 if growth < GOAL_MIB else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
