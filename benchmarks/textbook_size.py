"""How close matdiff's printed results come to the textbook answers, in size.

Run from the repository root:  python benchmarks/textbook_size.py [--all]

For every worked example in tests/cases.py it compares len(r.text) with the length of the
expected text (expected_sym_text where the variable is symmetric), whitespace removed, and prints
the distribution of the ratio (max, median, how many over 1.5x), each case over 1.5x by name,
and with --all every case. The baseline is the textbook answer itself (ratio 1.0). Exit status 1
if any case prints more than 1.5x its textbook size.
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from cases import CASES  # noqa: E402
from test_cases import declaration, derived, is_symmetric_wrt  # noqa: E402

import matdiff  # noqa: E402

GOAL = 1.5


def expected_text(case) -> str:
    text = case["expected_text"]
    if is_symmetric_wrt(case) and case["order"] == 1 and case.get("expected_sym_text"):
        text = case["expected_sym_text"]
    return re.sub(r"\s*\[.*\]\s*$", "", text)  # a trailing [remark] is prose, not the answer


def compact(text: str) -> int:
    return len(re.sub(r"\s+", "", text))


def main(argv: list[str]) -> int:
    rows = []
    for case in CASES:
        r = derived(case)
        want = expected_text(case)
        rows.append((compact(r.text) / compact(want), case["id"], r.text, want))
    ratios = [ratio for ratio, *_ in rows]
    over = [row for row in rows if row[0] > GOAL]
    print(f"{len(rows)} worked examples; size of r.text / size of the textbook answer:")
    print(f"  max {max(ratios):.2f}  median {statistics.median(ratios):.2f}  "
          f"min {min(ratios):.2f}  over {GOAL}x: {len(over)}")
    for ratio, cid, got, want in sorted(rows if "--all" in argv else over, reverse=True):
        print(f"{ratio:5.2f}  {cid}\n       got  {got}\n       want {want}")
    _ = matdiff, declaration
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
