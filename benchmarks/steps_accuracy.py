"""How exactly the derivation steps (r.steps) evaluate: every step of every worked scalar
example (orders 1 and 2) and of generated scalar expressions, at a random point and direction,
against the reported derivative contracted with the direction (twice for order 2).

    PYTHONPATH=src python3 benchmarks/steps_accuracy.py [generated count] [seed]

Prints the number of derivations and steps checked, the largest relative error, and the
Gaussian's steps with respect to S with their count and longest line."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cases import CASES  # noqa: E402
from test_cases import declaration, draw, random_direction  # noqa: E402
from test_properties import DECLARATION_TYPES, Chooser, draw_case  # noqa: E402

import matdiff  # noqa: E402
from matdiff.cli import GAUSSIAN, GAUSSIAN_DECLARE  # noqa: E402


def errors_of(r, declare, wrt, values, v):
    d = np.asarray(r.numpy()(**values), dtype=float)
    for _ in range(r.order):
        d = np.tensordot(d, v, axes=v.ndim)
    want = float(d)
    scale = max(abs(want), 1e-8 * float(np.linalg.norm(v)) ** r.order)
    for step in r.steps:
        got = float(matdiff.evaluate(step.text, declare, wrt=wrt, **values, **{f"d{wrt}": v}))
        yield abs(got - want) / scale


def main(count: int = 50, seed: int = 7) -> None:
    derivations, steps, worst = 0, 0, 0.0
    for case in CASES:
        decl = declaration(case)
        if matdiff.derive(case["expr"], case["wrt"], declare=decl).function.ndim:
            continue
        for order in (1, 2):
            r = matdiff.derive(case["expr"], case["wrt"], declare=decl, order=order)
            rng = np.random.default_rng(order + 11)
            values = draw(case, rng)
            v = np.asarray(random_direction(case, values, rng), dtype=float)
            errs = list(errors_of(r, decl, case["wrt"], values, v))
            derivations, steps, worst = derivations + 1, steps + len(errs), max([worst, *errs])
    print(f"worked examples: {derivations} derivations, {steps} steps, max relative error "
          f"{worst:.1e}")
    chooser, done, gsteps, gworst, skipped = Chooser(random.Random(seed)), 0, 0, 0.0, 0
    while done < count:
        case = draw_case(chooser, [()], True)
        if case is None:
            continue
        decl = "; ".join(f"{n}: {DECLARATION_TYPES[n]}" for n in sorted(case.node.variables))
        values = case.point()
        rng = np.random.default_rng(case.seed % 1000)
        v = rng.standard_normal(np.shape(values[case.wrt]))
        v = np.asarray((v + v.T) / 2 if case.symmetric_wrt else v, dtype=float)
        for order in (1, 2):
            try:
                r = matdiff.derive(case.expression, case.wrt, declare=decl, order=order)
                with np.errstate(all="ignore"):
                    errs = list(errors_of(r, decl, case.wrt, values, v))
            except matdiff.MatdiffError:
                skipped += 1
                continue
            if not np.all(np.isfinite(errs)):
                skipped += 1
                continue
            gsteps, gworst = gsteps + len(errs), max([gworst, *errs])
        done += 1
    print(f"generated: {count} expressions x orders 1, 2 ({skipped} skipped: a limit or a "
          f"non-finite value), {gsteps} steps, max relative error {gworst:.1e}")
    gaussian = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE).steps
    lines = gaussian.text.splitlines()
    print(f"Gaussian wrt S: {len(gaussian)} steps (+1 where line), longest line "
          f"{max(map(len, lines))} characters, longest step text with its bindings "
          f"{max(len(s.text) for s in gaussian)}")
    print(gaussian.text)


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
