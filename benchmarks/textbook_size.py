"""How close matdiff's printed results come to the textbook answers, in size.

Run from the repository root:  python benchmarks/textbook_size.py [--all]

For every worked example in tests/cases.py it compares the size of r.text (whitespace removed)
with the size of the expected text (expected_sym_text where the variable is symmetric), and
prints the distribution of the ratio (max, median, how many over 1.5x), each case over 1.5x by
name, and with --all every case. The baseline is the textbook answer itself (ratio 1.0).

Two readings of the expected text, both stated in the output:
* a trailing remark in parentheses or brackets is prose, not the answer; where the textbook
  shows a tensor by its differential (remark "dF = A*dX*B") and matdiff's r.text is the
  differential, the two differentials are compared;
* where the textbook writes f for the function itself ("0.5*f*(...)", the Gaussian density),
  matdiff's own abbreviation r.abbreviated("f") (what the CLI prints) is compared, marked (f).
Exit status 1 if any case prints more than 1.5x its textbook size.
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
from test_cases import derived, is_symmetric_wrt  # noqa: E402

import matdiff  # noqa: E402

GOAL = 1.5


def expected_text(case) -> tuple[str, str]:
    """The textbook answer without its remark, and the remark."""
    text = case["expected_text"]
    if is_symmetric_wrt(case) and case["order"] == 1 and case.get("expected_sym_text"):
        text = case["expected_sym_text"]
    match = re.search(r"\s{2,}[(\[](.*)[)\]]\s*$", text)
    return (text[:match.start()], match.group(1)) if match else (text, "")


def compact(text: str) -> int:
    return len(re.sub(r"\s+", "", text))


def printed(case) -> tuple[str, str]:
    """What matdiff prints, and the textbook answer to compare it with."""
    r = derived(case)
    want, remark = expected_text(case)
    differential = re.match(r"d2?F?f? = (.*)", remark)
    if r.shown_as_differential and differential:
        return r.text, differential.group(1)
    if re.search(r"\bf\b", want) and r.abbreviated("f"):
        return r.abbreviated("f") + "   (f)", want
    return r.text, want


# textbook answers written by hand for classes the worked examples do not cover:
# (expression, wrt, declare, order, the answer as a textbook prints it)
OWN_CASES = [
    ("exp(x)/sum(exp(x))", "x", None, 1, "diag(s) - s*s' where s = exp(x)/sum(exp(x))"),
    ("log(sum(exp(z)))", "z", None, 2, "diag(s) - s*s' where s = exp(z)/sum(exp(z))"),
    ("-y'*log(exp(z)/sum(exp(z)))", "z", None, 1, "sum(y)*s - y where s = exp(z)/sum(exp(z))"),
    ("-y'*log(exp(z)/sum(exp(z)))", "z", None, 2,
     "sum(y)*(diag(s) - s*s') where s = exp(z)/sum(exp(z))"),
    ("sum(log(vector(1) + exp(X*w))) - y'*X*w", "w", None, 1,
     "X'*(s - y) where s = vector(1)./(vector(1) + exp(-X*w))"),
    ("sum(log(vector(1) + exp(X*w))) - y'*X*w", "w", None, 2,
     "X'*diag(s.*(vector(1) - s))*X where s = vector(1)./(vector(1) + exp(-X*w))"),
    ("norm2(x - y)", "x", None, 1, "(x - y)/norm2(x - y)"),
    ("norm2(A*x - y)", "x", None, 1, "A'*(A*x - y)/norm2(A*x - y)"),
    ("sqrt(x'*y)", "x", None, 1, "y/(2*sqrt(x'*y))"),
    ("log(abs(det(X)))", "X", None, 1, "inv(X)'"),
    ("log(det(X'*A*X))", "X", None, 1, "A*X*inv(X'*A*X) + A'*X*inv(X'*A'*X)"),
    ("-1/2*log(det(S)) - 1/2*(x - m)'*inv(S)*(x - m)", "S", "S: symmetric posdef matrix", 1,
     "1/2*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))"),
    ("1/2*(tr(inv(T)*S) + (m - n)'*inv(T)*(m - n) - k + log(det(T)/det(S)))", "S",
     "S, T: symmetric posdef matrix(k,k); m, n: vector(k); k: scalar", 1,
     "1/2*(inv(T) - inv(S))"),
    ("1/2*(tr(inv(T)*S) + (m - n)'*inv(T)*(m - n) - k + log(det(T)/det(S)))", "T",
     "S, T: symmetric posdef matrix(k,k); m, n: vector(k); k: scalar", 1,
     "1/2*(inv(T) - inv(T)*(S + (m - n)*(m - n)')*inv(T))"),
    ("norm2(y - X*w)^2 + c*w'*w", "w", None, 1, "2*(X'*(X*w - y) + c*w)"),
    ("norm2(y - X*w)^2 + c*w'*w", "w", None, 2, "2*(X'*X + c*eye)"),
    ("tr(A*S*B*S)", "S", "S: symmetric matrix", 1, "1/2*(G + G') where G = A'*S*B' + B'*S*A'"),
    ("tr(inv(S)*A*inv(S)*B)", "S", "S: symmetric matrix", 1,
     "-1/2*(G + G') where G = inv(S)*(A'*inv(S)*B' + B'*inv(S)*A')*inv(S)"),
]


def report(title: str, rows: list, show_all: bool) -> list:
    ratios = [ratio for ratio, *_ in rows]
    over = [row for row in rows if row[0] > GOAL]
    print(f"{title}: size of r.text / size of the textbook answer:")
    print(f"  max {max(ratios):.2f}  median {statistics.median(ratios):.2f}  "
          f"min {min(ratios):.2f}  over {GOAL}x: {len(over)} of {len(rows)}")
    for ratio, cid, got, want in sorted(rows if show_all else over, reverse=True):
        print(f"{ratio:5.2f}  {cid}\n       got  {got}\n       want {want}")
    return over


def main(argv: list[str]) -> int:
    rows = []
    for case in CASES:
        got, want = printed(case)
        rows.append((compact(got.removesuffix("   (f)")) / compact(want), case["id"], got, want))
    over = report(f"{len(rows)} worked examples (tests/cases.py)", rows, "--all" in argv)
    own = []
    for expr, wrt, declare, order, want in OWN_CASES:
        got = matdiff.derive(expr, wrt, declare=declare, order=order).text
        own.append((compact(got) / compact(want), f"d{'2' if order == 2 else ''}/d{wrt} "
                    f"{expr}", got, want))
    report(f"{len(own)} hand-written textbook cases (this file)", own, "--all" in argv)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
