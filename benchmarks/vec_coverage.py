"""How many derivatives have a vec (Kronecker) form, why the others have none, and whether
every printed vec form reads back to the derivative tensor reshaped column-major.

A coverage measurement, not a timing: run from the repository root,

    python benchmarks/vec_coverage.py [first-order draws] [second-order draws]

(default 1500 and 500) over seeded draws of the property generator (tests/test_properties.py,
every variable declared) and the worked examples (tests/cases.py). Exit status 1 if a vec form
does not read back to relative error 1e-8.
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_properties as generator  # noqa: E402
from cases import CASES  # noqa: E402
from test_cases import declaration  # noqa: E402

import matdiff  # noqa: E402

TOLERANCE = 1e-8


def as_matrix(d: np.ndarray, rows: int) -> np.ndarray:
    return np.reshape(d, (int(np.prod(d.shape[:rows], dtype=int)), -1), order="F")


def row_axes(r: matdiff.Result) -> int:
    return r.function.ndim if r.order == 1 else len(r.variables[r.wrt].shape)


def measure(order: int, draws: int, tally: collections.Counter, reasons: collections.Counter,
            bad: list) -> None:
    kinds = generator.ALL_KINDS if order == 1 else [generator.SCALAR]
    seed = done = 0
    while done < draws:
        seed += 1
        case = generator.draw_case(generator.Chooser(random.Random(7919 * seed + order)), kinds,
                                   allow_symmetric_wrt=order == 1)
        if case is None:
            continue
        done += 1
        declare = generator.declaration_for(case.node.variables, True)
        try:
            r = matdiff.derive(case.expression, case.wrt, declare=declare, order=order)
        except matdiff.MatdiffError:
            tally[f"order {order}: derive refused"] += 1
            continue
        axes = f"order {order}, {r.derivative.ndim} axes"
        if r.vec is None:
            tally[f"{axes}: no vec form"] += 1
            reasons[r.vec_reason] += 1
            continue
        tally[f"{axes}: vec form"] += 1
        point = case.point()
        try:  # the property test's filter: no kinks, poles or nearly singular matrices nearby
            generator.assume_reference_is_reliable(case, point)
        except UnsatisfiedAssumption:
            tally[f"{axes}: no reliable point"] += 1
            continue
        values = generator.numeric_arguments(point)
        with np.errstate(all="ignore"):
            try:
                tensor = np.asarray(r.numpy()(**values), dtype=float)
            except matdiff.MatdiffError:
                continue
            if not np.all(np.isfinite(tensor)):
                continue
            try:
                with matdiff.limits(parts=max(10_000, len(r.vec.text))):  # long forms too
                    read_back = matdiff.evaluate(r.vec.text, declare, **values)
            except matdiff.MatdiffError as err:
                tally[f"{axes}: vec form does not read back"] += 1
                bad.append(f"{case!r}: {r.vec.text[:300]} ({err})")
                continue
        expected = as_matrix(tensor, row_axes(r))
        error = generator.relative_error(np.reshape(read_back, expected.shape), expected)
        tally["read back and checked"] += 1
        if error > TOLERANCE:
            bad.append(f"{case!r}: {r.vec.text[:300]} (relative error {error:.2g})")


def main() -> int:
    first, second = (int(a) for a in (sys.argv[1:] + ["1500", "500"])[:2])
    tally: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    bad: list[str] = []
    worked = sum(matdiff.derive(c["expr"], c["wrt"], declare=declaration(c),
                                order=c["order"]).vec is not None for c in CASES)
    print(f"worked examples with a vec form: {worked} of {len(CASES)}")
    measure(1, first, tally, reasons, bad)
    measure(2, second, tally, reasons, bad)
    for key in sorted(tally):
        print(f"{tally[key]:6d}  {key}")
    print("reasons for no vec form:")
    for reason, count in reasons.most_common():
        print(f"{count:6d}  {reason}")
    for line in bad:
        print("NOT READ BACK:", line)
    return 1 if any("relative error" in line for line in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
