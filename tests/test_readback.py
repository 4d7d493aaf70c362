"""Everything matdiff prints reads back: r.text, r.differential.text and their LaTeX forms of
random expressions (the property generator, seeded, orders 1 and 2) evaluate with
matdiff.evaluate, under the same declarations, to the derivative's value (the differential:
contracted with a random dX). LaTeX states no sizes: a LaTeX form whose ones or identity
nothing around sizes is not read back (its text form, which states them, is).

The derivative's value itself is checked against finite differences by test_properties; here
its printed forms are checked against it, at 1e-8. CI runs READBACK_CASES seeds; set
MATDIFF_READBACK_CASES=2000 for the full measurement (it prints the tally).
"""

from __future__ import annotations

import os
import random
import re

import numpy as np
import pytest
from hypothesis.errors import UnsatisfiedAssumption
from test_properties import (
    ALL_KINDS,
    SCALAR,
    Case,
    Chooser,
    assume_reference_is_reliable,
    draw_case,
    numeric_arguments,
)

import matdiff

READBACK_CASES = int(os.environ.get("MATDIFF_READBACK_CASES", "150"))
TOLERANCE = 1e-8


def relative_error(actual, expected) -> float:
    """Max absolute difference over the larger of 1 and the expected values' size; the
    shapes must agree."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    return float(np.max(np.abs(actual - expected), initial=0.0)) / scale


def printed_forms(case: Case, order: int) -> list[tuple[str, str, np.ndarray]] | None:
    """(what, text, expected value) for r.text and r.differential.text at the case's point;
    None where matdiff refuses the case or the point is unusable (no value to compare)."""
    try:
        r = matdiff.derive(case.expression, case.wrt, declare=case.declare, order=order)
    except matdiff.MatdiffError:
        return None
    point = case.point()
    try:  # the property test's filter: no kinks, poles or nearly singular matrices nearby
        assume_reference_is_reliable(case, point)
    except UnsatisfiedAssumption:
        return None
    values = numeric_arguments(point)
    with np.errstate(all="ignore"):
        try:
            value = np.asarray(r.numpy()(**values), dtype=float)
        except matdiff.MatdiffError:
            return None
    if not np.all(np.isfinite(value)) or np.max(np.abs(value), initial=0) > 1e6:
        return None
    rng = np.random.default_rng(case.seed % 2**31)
    dx = rng.standard_normal(np.shape(values[case.wrt]))
    if case.symmetric_wrt:
        dx = (dx + dx.T) / 2
    contracted = value
    for _ in range(order):
        contracted = np.tensordot(contracted, dx, axes=dx.ndim)
    values[f"d{case.wrt}"] = dx
    with np.errstate(all="ignore"):
        unprinted = np.asarray(r.differential.numpy()(**values), dtype=float)
    if not relative_error(unprinted, contracted) < TOLERANCE / 10:
        # two evaluation orders of one value disagree: rounding dominates at this point
        # (huge intermediates that cancel), so no printed form could be checked at 1e-8
        return None
    shown = contracted if r.shown_as_differential else value
    forms = [("r.differential.text", r.differential.text, contracted),
             ("r.text", r.text, shown),
             ("r.differential.latex", r.differential.latex, contracted),
             ("r.latex", r.latex, shown)]
    return [(what, text, expected, values, r) for what, text, expected in forms]


def _unsized(latex: str) -> bool:
    """Whether a LaTeX form has a ones array or identity without its size (\\mathbf{1}, I):
    where nothing around them fixes it, reading it back cannot know the size."""
    return bool(re.search(r"\\mathbf\{1\}(?!_)|\bI\b(?!_)", latex))


def check_case(case: Case, order: int) -> list[str] | None:
    """The problems found (empty if every printed form reads back to its value); None where
    the case was skipped."""
    forms = printed_forms(case, order)
    if forms is None:
        return None
    problems = []
    for what, text, expected, values, r in forms:
        declare = case.declare if case.fully_declared else r.declaration
        if "[" in text and not what.endswith("latex"):
            problems.append(f"{what} is index notation: {text}")
            continue
        try:
            # a long printed form reads back under the limits its length needs (the default
            # parts limit is for typed input)
            with np.errstate(all="ignore"), matdiff.limits(parts=max(10_000, len(text))):
                actual = matdiff.evaluate(text, declare, **values,
                                          syntax="latex" if what.endswith("latex") else "text")
            error = relative_error(actual, expected)
        except matdiff.MatdiffError as err:
            if what.endswith("latex") and "is not known" in str(err) and _unsized(text):
                continue  # LaTeX writes 1 and I unsized where only the text states sizes
            problems.append(f"{what} {text!r} does not read back: {err}")
            continue
        except Exception as err:  # noqa: BLE001 - any failure to read back is the finding
            problems.append(f"{what} {text!r} does not read back: {type(err).__name__}: {err}")
            continue
        if not error <= TOLERANCE:
            problems.append(f"{what} {text!r}: relative error {error:.2g}")
    return problems


def cases(count: int, order: int):
    kinds = [SCALAR] if order == 2 else ALL_KINDS
    for seed in range(count):
        case = draw_case(Chooser(random.Random(1000 * order + seed)), kinds,
                         allow_symmetric_wrt=order == 1)
        if case is not None:
            yield case


@pytest.mark.parametrize("order", [1, 2])
def test_printed_forms_read_back(order):
    drawn, skipped, failures = 0, 0, []
    for case in cases(READBACK_CASES, order):
        drawn += 1
        problems = check_case(case, order)
        if problems is None:
            skipped += 1
            continue
        failures += [case.describe(p) for p in problems]
    if "MATDIFF_READBACK_CASES" in os.environ:
        print(f"\norder {order}: {drawn} expressions, {skipped} skipped (refused or no "
              f"reliable point), {drawn - skipped} read back, {len(failures)} problems in "
              f"{len({f.split('problem:')[0] for f in failures})} expressions")
    assert skipped < drawn / 3, f"{skipped} of {drawn} skipped"
    assert not failures, "\n".join(failures[:5])
