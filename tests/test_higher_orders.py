"""Property tests beyond the Hessian, on random expressions of the property generator (seeded):
order 3 against differences of the order-2 derivative (itself verified by test_properties),
mixed second derivatives against differences of the verified gradient along the other
variable, directional derivatives against differences of the generator's own NumPy
evaluator (order 1) and of the verified gradient (order 2, the Hessian applied to V).

A case is skipped only where the reference is unreliable: test_properties' filter (kinks,
poles, nearly singular matrices, huge values) or two step sizes that disagree.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis.errors import UnsatisfiedAssumption
from test_properties import (
    SCALAR,
    VARIABLE_KINDS,
    Case,
    Chooser,
    assume_reference_is_reliable,
    draw_case,
    numeric_arguments,
)
from test_readback import relative_error

import matdiff

CASES = 40
STENCIL = ((-2.0, 1 / 12), (-1.0, -8 / 12), (1.0, 8 / 12), (2.0, -1 / 12))
TOLERANCE = 1e-5


def along(f, values: dict, name: str, direction: np.ndarray, step: float) -> np.ndarray:
    x0 = np.asarray(values[name], float)
    return sum(c * np.asarray(f({**values, name: x0 + s * step * direction}), float)
               for s, c in STENCIL) / step


def differences(f, values: dict, name: str, step: float) -> np.ndarray:
    """shape(f) + shape(values[name]): entry by entry (E_ij + E_ji)/2 for the symmetric S."""
    x0 = np.asarray(values[name], float)
    f0 = np.asarray(f(values))
    out = np.zeros(f0.shape + x0.shape)
    for idx in np.ndindex(*x0.shape):
        e = np.zeros(x0.shape)
        if name == "S":
            e[idx] += 0.5
            e[idx[::-1]] += 0.5
        else:
            e[idx] = 1.0
        out[(Ellipsis,) + idx] = along(f, values, name, e, step)
    return out


def reliable_reference(f, values, name, direction=None):
    """Differences at two step sizes; None where they disagree (the reference is noise)."""
    with np.errstate(all="ignore"):
        if direction is None:
            fine, coarse = (differences(f, values, name, h) for h in (1e-3, 2e-3))
        else:
            fine, coarse = (along(f, values, name, direction, h) for h in (1e-3, 2e-3))
    if not (np.all(np.isfinite(fine)) and relative_error(coarse, fine) < TOLERANCE / 4):
        return None
    return fine


def scalar_cases(seed_base: int, max_wrt_axes: int = 2):
    for seed in range(CASES):
        case = draw_case(Chooser(random.Random(seed_base + seed)), [SCALAR],
                         allow_symmetric_wrt=False)
        if case is None or len(VARIABLE_KINDS[case.wrt]) > max_wrt_axes:
            continue
        point = case.point()
        try:
            assume_reference_is_reliable(case, point)
        except UnsatisfiedAssumption:
            continue
        yield case, point


def numeric(r: matdiff.Result):
    fn = r.numpy()
    return lambda values: fn(**numeric_arguments(values))


def derive_or_skip(case: Case, **kwargs):
    try:
        return matdiff.derive(case.expression, declare=case.declare, **kwargs)
    except matdiff.MatdiffError as err:
        if "more than" in str(err):  # the size limit: a refusal, not a wrong answer
            return None
        raise


def test_third_order_against_differences_of_the_second():
    compared = 0
    # vectors and scalars only: third derivatives by matrices take seconds each to simplify
    # (test_linear_maps has some); CI time goes to the many small ones
    for case, point in scalar_cases(30_000, max_wrt_axes=1):
        second = derive_or_skip(case, wrt=case.wrt, order=2)
        third = derive_or_skip(case, wrt=case.wrt, order=3)
        if second is None or third is None:
            continue
        reference = reliable_reference(numeric(second), point, case.wrt)
        if reference is None:
            continue
        with np.errstate(all="ignore"):
            value = numeric(third)(point)
        assert relative_error(value, reference) < TOLERANCE, case.describe(third.text)
        compared += 1
    assert compared >= CASES // 4, compared


def test_mixed_second_derivatives():
    compared = 0
    for case, point in scalar_cases(40_000):
        others = sorted(set(case.node.variables) - {case.wrt})
        if not others:
            continue
        other = others[case.seed % len(others)]
        r = derive_or_skip(case, wrt=(case.wrt, other))
        if r is None:
            continue
        gradient = matdiff.derive(case.expression, case.wrt, declare=case.declare)
        reference = reliable_reference(numeric(gradient), point, other)
        if reference is None:
            continue
        with np.errstate(all="ignore"):
            value = numeric(r)(point)
        assert value.shape == np.shape(point[case.wrt]) + np.shape(point[other])
        assert relative_error(value, reference) < TOLERANCE, case.describe(r.text)
        compared += 1
    assert compared >= CASES // 3, compared


@pytest.mark.parametrize("order", [1, 2])
def test_directional_derivatives(order):
    compared = 0
    for case, point in scalar_cases(50_000 + 1000 * order):
        rng = np.random.default_rng(case.seed % 2**31)
        v = rng.standard_normal(np.shape(point[case.wrt]))
        r = derive_or_skip(case, wrt=case.wrt, order=order, direction="V_dir")
        if r is None:
            continue
        if order == 1:
            lower = case.evaluate   # the generator's own NumPy evaluator
        else:
            lower = numeric(matdiff.derive(case.expression, case.wrt, declare=case.declare))
        reference = reliable_reference(lower, point, case.wrt, v)
        if reference is None:
            continue
        with np.errstate(all="ignore"):
            value = numeric(r)({**point, "V_dir": v})
        expected_shape = () if order == 1 else tuple(np.shape(point[case.wrt]))
        assert np.shape(value) == expected_shape
        assert tuple(map(str, r.shape)) == (() if order == 1 else VARIABLE_KINDS[case.wrt]) \
            or not case.fully_declared
        assert relative_error(value, reference) < TOLERANCE, case.describe(r.text)
        compared += 1
    assert compared >= CASES // 3, compared


@pytest.mark.parametrize("expr, collected", [
    ("(x'*A*x)^2", "12*(dx'*A*dx)*(x'*A*dx + dx'*A*x)"),
    ("(x'*x)^2", "24*(x'*dx)*(dx'*dx)"),
])
def test_third_differential_collects_its_terms(expr, collected):
    """Terms the IR keeps apart (some inside a sum factor) add up in the printed form, and the
    printed form is the third derivative applied to dx three times."""
    r = matdiff.derive(expr, wrt="x", order=3, declare="x: vector(n); A: matrix(n,n)")
    assert r.text == collected
    rng = np.random.default_rng(4)
    values = {"x": rng.standard_normal(3), "A": rng.standard_normal((3, 3))}
    dx = rng.standard_normal(3)
    tensor = r.numpy()(**values)
    expected = np.einsum("ijk,i,j,k->", tensor, dx, dx, dx)
    actual = matdiff.evaluate(r.text, "x: vector(n); A: matrix(n,n)", dx=dx, **values)
    assert relative_error(actual, expected) < 1e-12


@pytest.mark.parametrize("expr, declare", [
    ("tr(S*S*S)", "S: symmetric matrix(n,n)"),
    ("logdet(S)", "S: symmetric posdef matrix(n,n)"),
    ("x'*inv(S)*x", "S: symmetric posdef matrix(n,n)"),
])
def test_full_hessian_of_a_symmetric_variable_checks_along_symmetric_directions(expr, declare):
    """The gradient it differentiates was simplified on symmetric matrices, so the check moves
    along symmetric directions only; it said MISMATCH for correct Hessians before, and still
    catches a wrong one."""
    import dataclasses

    from matdiff.core.ir import scale

    r = matdiff.derive(expr, wrt="S", declare=declare, order=2, symmetric="full")
    assert r.check().verdict == "ok"
    wrong = dataclasses.replace(r, _derivative=scale(2, r.derivative))
    assert wrong.check().verdict == "mismatch"
