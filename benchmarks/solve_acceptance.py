"""The solve acceptance numbers: for each required class, the largest Solution.check over
seeds (the derived gradient at the closed form on random data, relative to its terms), and
the solve time; for the expressions without a closed form, the fallback's iterations and
gradient norm. A measurement, not a timing benchmark: exit status 1 if a check is >= 1e-9 or
a fallback does not converge.

    python benchmarks/solve_acceptance.py [seeds]      (default 10)
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.solve.test_fallback import CASES  # noqa: E402

import matdiff  # noqa: E402

SC = "(Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m')"
ONE = "m: vector(d); Y: matrix(n,d); r: positive vector(n)"
POOLED = "Y'*diag(R*vector(1))*Y - Y'*R*M - M'*R'*Y + M'*diag(R'*vector(1))*M"
CLASSES = [
    ("ridge", "norm2(X*w - y)^2 + lam*w'*w", "w", "lam: scalar", None),
    ("weighted least squares", "(X*w - y)'*diag(q)*(X*w - y)", "w", "q: positive vector(n)",
     None),
    ("Gaussian m, S jointly", "-N/2*logdet(S) - 1/2*tr(inv(S)*(Y - vector(1)*m')'*(Y - "
     "vector(1)*m'))", "m, S", "S: symmetric posdef matrix(d,d); m: vector(d); "
     "Y: matrix(N,d); N: scalar", None),
    ("GMM component m, S", f"-1/2*sum(r)*logdet(S) - 1/2*tr(inv(S)*{SC})", "m, S",
     f"S: symmetric posdef matrix(d,d); {ONE}", None),
    ("mixing weights (simplex)", "(R'*vector(1))'*log(w)", "w",
     "w: positive vector(K); R: matrix(n,K)", "simplex"),
    ("precision P = inv(S)", f"1/2*sum(r)*logdet(P) - 1/2*tr(P*{SC})", "P",
     f"P: symmetric posdef matrix(d,d); {ONE}", None),
    ("tied S", f"-1/2*sum(R)*logdet(S) - 1/2*tr(inv(S)*({POOLED}))", "S",
     "S: symmetric posdef matrix(d,d); M: matrix(K,d); Y: matrix(n,d); R: matrix(n,K)", None),
    ("diagonal S = diag(s)", f"-1/2*sum(r)*logdet(diag(s)) - 1/2*tr(inv(diag(s))*{SC})", "s",
     f"s: positive vector(d); {ONE}", None),
    ("spherical S = v*eye", f"-1/2*d*sum(r)*log(v) - 1/2/v*tr({SC})", "v",
     f"v: positive scalar; d: scalar; {ONE}", None),
]


def main() -> int:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    failed = False
    print(f"{'class':28s} {'max check':>10s} {'solve ms':>9s}  solution")
    for name, expr, wrt, declare, constraint in CLASSES:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            sol = matdiff.solve(expr, wrt=wrt, declare=declare, constraint=constraint)
            times.append(time.perf_counter() - t)
        worst = max(sol.check(seed) for seed in range(seeds))
        failed |= not worst < 1e-9
        print(f"{name:28s} {worst:10.1e} {1e3 * statistics.median(times):9.0f}  "
              f"{sol.text.replace(chr(10), '; ')}")
    print(f"\n{'no closed form':44s} {'method':16s} {'iter':>4s} {'|g|/max(1,|f|)':>14s}")
    for expr, wrt, declare, data, start, _ in CASES:
        sol = matdiff.solve(expr, wrt=wrt, declare=declare)
        found = sol.minimize(start=start, **data)
        failed |= sol.closed or not found.converged
        print(f"{expr[:44]:44s} {found.method:16s} {found.iterations:4d} "
              f"{found.gradient_norm:14.1e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
