"""Every primitive's derivative rule and every simplification rule, checked numerically; the
NumPy code generator checked against plain einsum; limits on long and deep input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import matdiff
from matdiff.core import ir
from matdiff.core.ir import PRIMITIVES
from matdiff.core.simplify import RULES, simplify
from matdiff.numeric.codegen import compile_numpy

# an expression that exercises each primitive's rule, with its declarations
PRIMITIVE_CASES = {
    "exp": ("sum(exp(A*x))", "x", None),
    "log": ("sum(log(exp(A*x) + vector(2)))", "x", None),
    "sin": ("sum(sin(A*x))", "x", None),
    "cos": ("sum(cos(A*x))", "x", None),
    "tan": ("sum(tan(x/4))", "x", None),
    "tanh": ("sum(tanh(A*x))", "x", None),
    "abs": ("sum(abs(A*x))", "x", None),
    "relu": ("sum(relu(A*x))", "x", None),
    "sign": ("sum(sign(A*x).*x.*x)", "x", None),
    "pow": ("sum((x.*x + vector(1)).^(a*x))", "x", None),
    "inv": ("x'*inv(X)*y", "X", "X: invertible matrix"),
    "det": ("det(X)", "X", "X: invertible matrix"),
    "logdet": ("logdet(S)", "S", "S: posdef matrix"),
    "mpow": ("x'*(X^3)'*(a*X + eye)^4*y + tr(X^5*X*X')", "X", None),
}


def test_every_primitive_has_a_case():
    differentiable = {name for name, p in PRIMITIVES.items() if p.differentiable}
    assert differentiable == set(PRIMITIVE_CASES)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CASES))
@pytest.mark.parametrize("order", [1, 2])
def test_primitive_rule_against_finite_differences(name, order):
    expr, wrt, declare = PRIMITIVE_CASES[name]
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    assert r.check(trials=4) < 1e-6
    through_sign = name == "sign" or (order == 2 and name in ("abs", "relu"))
    assert bool(r.notes) == through_sign, r.notes
    if through_sign:
        assert r.notes == (PRIMITIVES["sign"].note,) and "undefined where u = 0" in r.notes[0]


def test_sign_has_derivative_zero():
    """sign's derivative is 0 where it exists: abs's Hessian vanishes, sign(x).*x has sign(x)
    as gradient (the product rule's other term is 0)."""
    assert matdiff.derive("sum(abs(x))", "x", order=2).text == "matrix(0, n, n)"
    assert matdiff.derive("sum(sign(x).*x)", "x").text == "sign(x)"


def test_pow_with_variable_base_and_exponent():
    r = matdiff.derive("(1 + a*a)^(b*a)", "a")
    assert r.check() < 1e-6
    assert matdiff.derive("(1 + a*a)^(b*a)", "b").check() < 1e-6


# expressions that trigger each simplification rule; simplify must keep their value
RULE_CASES = {
    "pow": ["(a^2)^3", "(2*a*b)^2", "a^0 + b^1", "2^3*a", "(a^(1/2))^2",
            "((2*pi)^a*(b*b + 1))^(-1/2)", "(exp(a)*(b*b + 1)*3)^(1/3)", "((2*pi)^b)^(-1/2)"],
    "exp": ["exp(log(a*a + 1))", "exp(0)*a"],
    "log": ["log(exp(a))", "log(1) + a", "log((a*a + 1)^(1/2))", "log(exp(a)*(b*b + 1))"],
    "sin": ["sin(0) + a"], "cos": ["cos(0)*a"], "tan": ["tan(0) + a"],
    "tanh": ["tanh(0) + a"], "abs": ["abs(-2)*a"], "sign": ["sign(-3)*a"],
    "relu": ["relu(-1) + relu(2)*a"],
    "inv": ["inv(inv(X))", "inv(X')", "inv(2*a*X)", "inv(eye)*X"],
    "det": ["det(inv(X))", "det(X')"],
    "logdet": ["logdet(inv(X))", "logdet(X')"],
    "mpow": ["(X^2)^3", "(X')^3", "eye^4*X", "X^2*X*X^3", "tr(X*X^2*X')"],
}


@pytest.mark.parametrize("op, value", [("det", 1.0), ("logdet", 0.0)])
def test_determinant_of_identity(op, value):
    assert simplify(ir.apply(op, ir.delta(3))) is ir.num(value)


def test_every_rule_has_cases():
    assert set(RULES) == set(RULE_CASES)


@pytest.mark.parametrize("text", [t for texts in RULE_CASES.values() for t in texts])
def test_simplification_keeps_the_value(text):
    from matdiff.syntax.lower import lower
    from matdiff.syntax.parse import parse_typed

    root, variables = parse_typed(text, "X: invertible matrix(3,3)")
    raw = lower(root, variables)
    shapes = {n: d.shape for n, d in variables.items()}
    rng = np.random.default_rng(0)
    values = {"a": 0.7, "b": -1.3, "X": rng.standard_normal((3, 3)) + 3 * np.eye(3)}
    want = compile_numpy(raw, shapes)(**values)
    got = compile_numpy(simplify(raw), shapes)(**values)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_power_splits_over_positive_factors_only():
    """(a*b)^p = a^p*b^p needs all factors but one positive when p is not a whole number: with
    a, b < 0 the left side is defined and the right is not."""
    gaussian = "S: posdef matrix(k,k); k: scalar"
    assert matdiff.parse("((2*pi)^k*det(S))^(-1/2)", gaussian) is \
        matdiff.parse("(2*pi)^(-k/2)*det(S)^(-1/2)", gaussian)
    assert matdiff.parse("(exp(a)*b)^(1/2)") is matdiff.parse("exp(a)^(1/2)*b^(1/2)")
    assert matdiff.parse("(a*b)^(1/2)") is not matdiff.parse("a^(1/2)*b^(1/2)")
    assert matdiff.parse("(-2*exp(a))^(1/3)") is not matdiff.parse("(-2)^(1/3)*exp(a/3)")


def test_canonical_form_meets_like_terms():
    """Equal up to renaming of summed indices and symmetric index order: one node."""
    assert matdiff.parse("x'*A*y + y'*A'*x") is matdiff.parse("2*x'*A*y")
    s = "S: symmetric matrix"
    assert matdiff.parse("x'*inv(S)*y - y'*inv(S)*x", s) is ir.zero()
    assert matdiff.parse("tr(A*B*C) - tr(C*A*B)") is ir.zero()


def test_sequential_einsum_matches_numpy():
    rng = np.random.default_rng(1)
    x = ir.var("x", ("n",))
    many = ir.einsum([(x, (0,))] * 40, (0,))  # x.^40 as 40 factors: past numpy's operand cap
    value = rng.uniform(0.9, 1.1, 3)
    assert np.allclose(compile_numpy(many, {"x": ("n",)})(x=value), value ** 40)
    a, b = ir.var("A", ("n", "n")), ir.var("B", ("n", "n"))
    factors = [((a, b)[k % 2], (k, k + 1)) for k in range(41)]  # A*B*A*...*A, 41 factors
    chain = ir.einsum(factors, (0, 41))
    arrays = {"A": rng.standard_normal((3, 3)) / 2, "B": rng.standard_normal((3, 3)) / 2}
    want = np.linalg.matrix_power(arrays["A"] @ arrays["B"], 20) @ arrays["A"]
    got = compile_numpy(chain, {"A": ("n", "n"), "B": ("n", "n")})(**arrays)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-14)


def test_numpy_checks_shapes_and_names():
    f = matdiff.derive("x'*A*x", "x").numpy()
    with pytest.raises(matdiff.MatdiffError, match="no value given for variable"):
        f(x=np.ones(3))
    with pytest.raises(matdiff.MatdiffError, match="dimension"):
        f(x=np.ones(3), A=np.ones((2, 2)))


def test_long_sums_and_deep_nesting():
    long_sum = " + ".join(f"c{i}*x'*A*x" for i in range(600))
    assert matdiff.derive(long_sum, "x").check() < 1e-8
    nested = "x"
    for _ in range(150):
        nested = f"sin({nested})"
    assert matdiff.derive(f"sum({nested})", "x").check() < 1e-6
    too_deep = "x"
    for _ in range(300):
        too_deep = f"sin({too_deep})"
    with pytest.raises(matdiff.MatdiffError, match="nested more than"):
        matdiff.derive(f"sum({too_deep})", "x")
    with pytest.raises(matdiff.MatdiffError, match="limit"):
        matdiff.derive(" + ".join(["x'*x"] * 3000), "x")


def test_matrix_powers_stay_powers():
    """A^k is one node, its trace's gradient one term, and a product of equal factors the same
    power: tr(A*A*A) and tr(A^3) are one expression."""
    assert matdiff.parse("tr(A*A*A)") is matdiff.parse("tr(A^3)")
    r = matdiff.derive("tr(A^3000)", "A")
    assert r.text == "3000*(A^2999)'"
    small = matdiff.derive("tr(A^7)", "A")
    assert small.text == "7*(A^6)'" and small.check() < 1e-8
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3)) / 2
    value = matdiff.derive("x'*A^40*x", "x").numpy()(A=a, x=np.ones(3))
    p = np.linalg.matrix_power(a, 40)
    assert np.allclose(value, (p + p.T) @ np.ones(3), rtol=1e-10, atol=1e-14)


def test_fraction_coefficients_stay_exact():
    r = matdiff.derive("x'*x/3", "x")
    assert r.text == "2*x/3"
    assert r.derivative.data == (Fraction(2, 3),)


def test_check_survives_badly_conditioned_draws():
    """Random A and B make A*B nearly singular now and then; check() must not cry wolf."""
    assert matdiff.derive("det(A*B)", "A").check(trials=5) < 1e-6


# identities of the canonical form (not keyed by a primitive): each left side simplifies to the
# node of its hand-written right side, and keeps its value
CANONICAL_IDENTITIES = [
    ("sign(a)*a", "abs(a)"),
    ("abs(b)*sign(b)", "b"),
    ("abs(b)/b", "sign(b)"),
    ("b/abs(b)", "sign(b)"),
    ("x.*sign(x)", "abs(x)"),
    ("(a*b + a*c)/a", "b + c"),
    ("det(X)*(det(X)*tr(X) + det(X)*tr(X'*X))/det(X)^2", "tr(X) + tr(X'*X)"),
    ("log(abs(det(X)))*0 + det(X)*sign(det(X))/abs(det(X))", "1"),
    ("(A + X*B)'", "A' + B'*X'"),
    ("(x.*y).^2", "x.^2.*y.^2"),
    ("(2*x).^(-1)", "1/2*x.^(-1)"),
    ("log(exp(x)/sum(exp(x)))", "x - log(sum(exp(x)))*vector(1)"),
    ("log(exp(x).*exp(y))", "x + y"),
    ("exp(x)./(exp(x)/sum(exp(x)))", "sum(exp(x))*x.^0"),  # x.^0: ones of x's size
]


@pytest.mark.parametrize("text, same", CANONICAL_IDENTITIES)
def test_canonical_identities(text, same):
    from matdiff.syntax.lower import lower
    from matdiff.syntax.parse import parse_typed

    declare = "X: invertible matrix(3,3); A, B: matrix(3,3); x, y: vector(3)"
    root, variables = parse_typed(text, declare)
    raw = lower(root, variables)
    shapes = {n: d.shape for n, d in variables.items()}
    rng = np.random.default_rng(1)
    values = {"a": 0.7, "b": -1.3, "c": 2.1, "X": rng.standard_normal((3, 3)) + 3 * np.eye(3),
              "A": rng.standard_normal((3, 3)), "B": rng.standard_normal((3, 3)),
              "x": rng.standard_normal(3), "y": rng.standard_normal(3)}
    want = compile_numpy(raw, shapes)(**values)
    got = compile_numpy(simplify(raw), shapes)(**values)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    assert simplify(raw) is matdiff.parse(same, declare)


def test_rewrites_that_turn_into_each_other_end():
    # (c*M).^3 splits its coefficient off, and the canonical form of the symmetric sum inside
    # gives it back with another orientation: simplification must stop, with a right answer
    r = matdiff.derive("((0.25*(B .* B) + (-S)) ./ exp(tanh(S))) .^ 3", "B",
                       declare="S: symmetric posdef matrix(n,n)")
    assert r.check().verdict == "ok"
