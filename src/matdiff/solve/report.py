"""``matdiff solve``: the steps, the solution and its check, as the command line prints them."""

from __future__ import annotations

import numpy as np

from .closed import solve
from .solution import Solution

CHECK_TOLERANCE = 1e-9


def run(expr: str, wrt: str, declare: str | None, constraint: str | None, fmt: str,
        seed: int) -> int:
    sol = solve(expr, wrt, declare=declare, constraint=constraint)
    print(f"f = {sol.gradients[sol.unknowns[0]].function_in(fmt)}")
    print(f"  declared: {sol.gradients[sol.unknowns[0]].declarations}")
    print("steps:")
    for k, step in enumerate(sol.steps, 1):
        print(f"  {k}. {step.move}:")
        print(f"       {step.text}")
    if not sol.closed:
        return _fallback(sol, seed)
    print("solution:")
    for line in sol.in_style(fmt).splitlines():
        print(f"  {line}")
    for note in sol.notes:
        print(f"  note: {note}")
    error = sol.check(seed)
    verdict = "ok" if error < CHECK_TOLERANCE else "FAILED"
    print(f"check: the derived gradient at the solution, on random data (seed {seed}), is "
          f"{error:.1e} of the size of its terms: {verdict}")
    return 0 if error < CHECK_TOLERANCE else 1


def _fallback(sol: Solution, seed: int) -> int:
    print(sol.reason)
    if sol.multiplier is not None:
        print("the numeric fallback takes unconstrained problems only")
        return 1
    found = sol.minimize(seed=seed)
    print(f"numeric fallback on random data (seed {seed}): {found}")
    for name, value in found.values.items():
        shown = np.array2string(np.asarray(value), precision=6, suppress_small=True)
        print(f"  {name} = {' '.join(shown.split())}")
    return 0 if found.converged else 1
