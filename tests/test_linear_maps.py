"""Derivatives as linear maps: differentials, tensors shown by what they do to dX, higher and
mixed orders, directional derivatives, evaluate(), stated sizes, dimensions as scalars.

Every expected value is either a hand-written textbook form (compared through the parser's
canonical form, or by value where two canonical forms differ) or an independent NumPy
function differentiated by finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest

import matdiff
from matdiff.syntax.types import declaration_text

STENCIL = ((-2.0, 1 / 12), (-1.0, -8 / 12), (1.0, 8 / 12), (2.0, -1 / 12))
H = 1e-3


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, f"{a.shape} != {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-12))


def along(f, x, v):
    """d/dt f(x + t v) at 0, by a 4-point central difference."""
    return sum(c * np.asarray(f(x + s * H * v)) for s, c in STENCIL) / H


def jacobian(f, x):
    """shape(f) + shape(x) by central differences, entry by entry."""
    x = np.asarray(x, float)
    f0 = np.asarray(f(x))
    out = np.zeros(f0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros(x.shape)
        e[idx] = 1
        out[(Ellipsis,) + idx] = along(f, x, e)
    return out


def invertible(rng, n):
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q1 @ np.diag(rng.uniform(0.8, 2, n)) @ q2.T


def posdef(rng, n):
    g = rng.standard_normal((n, n))
    return g @ g.T / n + np.eye(n)


def point(declare: str, rng, sizes=None) -> dict:
    """Values for the declared variables (invertible / posdef where declared)."""
    sizes = {"n": 3, "m": 2, "k": 3, "p": 4, **(sizes or {})}
    values = {}
    for decl in matdiff.api.parse_declarations(declare).values():
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in decl.shape)
        if "posdef" in decl.props:
            values[decl.name] = posdef(rng, shape[0])
        elif "invertible" in decl.props:
            values[decl.name] = invertible(rng, shape[0])
        elif "symmetric" in decl.props:
            g = rng.standard_normal(shape)
            values[decl.name] = (g + g.T) / 2
        else:
            values[decl.name] = rng.standard_normal(shape) if shape else float(rng.normal())
    return values


# --- textbook differentials ------------------------------------------------------------------

GAUSS = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSS_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k)"

TEXTBOOK = [  # expr, wrt, order, declare, the differential as a textbook writes it
    ("inv(X)", "X", 1, "X: invertible matrix(n,n)", "-inv(X)*dX*inv(X)"),
    ("X*X", "X", 1, "X: matrix(n,n)", "dX*X + X*dX"),
    ("A*X*B", "X", 1, "A: matrix(m,n); X: matrix(n,p); B: matrix(p,m)", "A*dX*B"),
    ("X'", "X", 1, "X: matrix(n,m)", "dX'"),
    ("det(X)", "X", 1, "X: invertible matrix(n,n)", "det(X)*tr(inv(X)*dX)"),
    ("log(det(X))", "X", 1, "X: invertible matrix(n,n)", "tr(inv(X)*dX)"),
    ("log(det(X))", "X", 2, "X: invertible matrix(n,n)", "-tr(inv(X)*dX*inv(X)*dX)"),
    ("log(det(X))", "X", 3, "X: invertible matrix(n,n)",
     "2*tr(inv(X)*dX*inv(X)*dX*inv(X)*dX)"),
    ("tr(X'*A*X)", "X", 2, "X: matrix(n,m); A: matrix(n,n)", "tr(dX'*(A + A')*dX)"),
    ("x'*A*x", "x", 2, "x: vector(n); A: matrix(n,n)", "dx'*(A + A')*dx"),
    (GAUSS, "x", 2, GAUSS_DECLARE, f"{GAUSS}*((dx'*inv(S)*(x - m))^2 - dx'*inv(S)*dx)"),
    (GAUSS, "m", 2, GAUSS_DECLARE, f"{GAUSS}*((dm'*inv(S)*(x - m))^2 - dm'*inv(S)*dm)"),
    ("log(det(S))", "S", 2, "S: posdef matrix(n,n)", "-tr(inv(S)*dS*inv(S)*dS)"),
]


@pytest.mark.parametrize("expr, wrt, order, declare, textbook", TEXTBOOK)
def test_textbook_differentials(expr, wrt, order, declare, textbook):
    """The printed differential means the textbook's (same canonical node, or the same value
    at random points and directions), and reads back with the same declarations."""
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    printed = r.differential.text
    assert "[" not in printed
    if matdiff.parse(printed, declare) is matdiff.parse(textbook, declare):
        return
    rng = np.random.default_rng(1)
    for _ in range(3):
        values = point(declare, rng)
        values |= point(declaration_text(r.directions.values()), rng)
        assert rel(matdiff.evaluate(printed, declare, **values),
                   matdiff.evaluate(textbook, declare, **values)) < 1e-10, printed


def test_gaussian_second_differential_names_the_density():
    r = matdiff.derive(GAUSS, "x", declare=GAUSS_DECLARE, order=2)
    assert r.differential_abbreviated("f") == "f*(((x - m)'*inv(S)*dx)^2 - dx'*inv(S)*dx)"


@pytest.mark.parametrize("expr, wrt, text", [
    ("inv(X)", "X", "-inv(X)*dX*inv(X)"),
    ("A*X*B", "X", "A*dX*B"),
    ("X'", "X", "dX'"),
    ("X*X", "X", "dX*X + X*dX"),
    ("log(det(X))", "X", "tr(inv(X)*dX)"),
])
def test_differentials_print_as_textbooks_do(expr, wrt, text):
    assert matdiff.derive(expr, wrt).differential.text == text


def test_tensors_are_shown_as_maps():
    """A 4-axis derivative: r.text is its differential, r.index the index form."""
    r = matdiff.derive("inv(X)", "X")
    assert r.shown_as_differential and not r.is_index_notation
    assert r.text == "-inv(X)*dX*inv(X)"
    assert r.index.startswith("D[i,j,k,l] = -inv(X)[i,k]*inv(X)[l,j]")
    assert r.unicode == "−X⁻¹dX X⁻¹"
    assert r.latex == r"-X^{-1} \mathrm{d}X\, X^{-1}"  # a thin space after the differential
    rng = np.random.default_rng(0)
    x, dx = invertible(rng, 3), rng.standard_normal((3, 3))
    expected = np.einsum("ijkl,kl->ij", jacobian(np.linalg.inv, x), dx)
    assert rel(matdiff.evaluate(r.text, X=x, dX=dx), expected) < 1e-8


def test_symmetric_variable_has_symmetric_direction():
    """dS of a symmetric S is symmetric (so 2*x'*dS*y and x'*dS*y + y'*dS*x are one form);
    the differential is the function's own, whatever the gradient convention."""
    declare = "S: symmetric matrix(n,n); x, y: vector(n)"
    r = matdiff.derive("x'*S*y", "S", declare=declare)
    assert r.directions["dS"].props == frozenset({"symmetric"})
    assert matdiff.parse(r.differential.text, declare) is matdiff.parse("y'*dS*x", declare)
    for convention in ("full", "cookbook"):
        other = matdiff.derive("x'*S*y", "S", declare=declare, symmetric=convention)
        assert other.differential.text == r.differential.text


# --- the input language: directions, sizes, dimensions -----------------------------------------

def test_direction_names_take_their_variables_type():
    from matdiff.syntax.parse import parse_typed

    _, v = parse_typed("dS + S", "S: symmetric posdef matrix(k,k)")
    assert v["dS"].shape == ("k", "k") and v["dS"].props == frozenset({"symmetric"})
    _, v = parse_typed("dx'*A*x")
    assert v["dx"].shape == v["x"].shape == ("n",)
    _, v = parse_typed("dX_2*X + dX")
    assert v["dX_2"].shape == v["dX"].shape == v["X"].shape
    _, v = parse_typed("A*dX*B", "A: matrix(m,n); B: matrix(p,q)")
    assert v["dX"].shape == ("n", "p")     # a matrix: dX's own name says so
    _, v = parse_typed("dx + y")
    assert len(v["dx"].shape) == 1
    _, v = parse_typed("dx", "dx: scalar")  # a declaration wins
    assert v["dx"].shape == ()


@pytest.mark.parametrize("expr, wrt, text", [
    ("x", "x", "eye(n)"),
    ("2*a*x", "x", "2*a*eye(n)"),
    ("a*x", "a", "x"),
    ("sum(x)*a", "a", "sum(x)"),
    ("a*vector(1) + x", "a", "vector(1, n)"),
    ("w*sum(x)", "x", "w*vector(1, n)'"),
])
def test_sizes_are_stated_where_nothing_implies_them(expr, wrt, text):
    # a is declared: values for names neither used nor declared are refused as typos
    r = matdiff.derive(expr, wrt, declare="x: vector(n); w: vector(m); a: scalar")
    assert r.text == text
    rng = np.random.default_rng(0)
    values = {"x": rng.standard_normal(3), "w": rng.standard_normal(2), "a": 0.7}
    assert rel(matdiff.evaluate(r.text, "x: vector(n); w: vector(m)", **values),
               r.numpy()(**values)) < 1e-12


def test_sized_constants_in_the_language():
    one = matdiff.evaluate("matrix(2, m, 3) + 0*A", "A: matrix(m,3)", A=np.zeros((2, 3)))
    assert np.array_equal(one, np.full((2, 3), 2.0))
    assert np.array_equal(matdiff.evaluate("eye(3)"), np.eye(3))
    assert np.array_equal(matdiff.evaluate("vector(-1, 4)"), -np.ones(4))


def test_dimensions_as_scalars():
    """k of S: matrix(k,k) is S's size: no `k: scalar`, numpy() reads it off the arrays."""
    declare = "S: symmetric posdef matrix(k,k); x, m: vector(k)"
    r = matdiff.derive(GAUSS, "m", declare=declare)
    assert "k" not in r.variables
    rng = np.random.default_rng(2)
    s, x, mu = posdef(rng, 3), rng.standard_normal(3), rng.standard_normal(3)
    density = np.exp(-0.5 * (x - mu) @ np.linalg.solve(s, x - mu)) / np.sqrt(
        (2 * np.pi) ** 3 * np.linalg.det(s))
    assert rel(r.numpy()(S=s, x=x, m=mu), density * np.linalg.solve(s, x - mu)) < 1e-10
    assert rel(matdiff.evaluate(GAUSS, declare, S=s, x=x, m=mu), density) < 1e-12
    # a dimension printed in a result reads back as that size
    t = matdiff.derive("det(c*X)", "c", declare="X: matrix(n,n); c: scalar")
    assert "n" in t.text
    x3 = invertible(rng, 3)
    assert rel(matdiff.evaluate(t.text, "X: matrix(n,n)", X=x3, c=1.3),
               3 * 1.3**2 * np.linalg.det(x3)) < 1e-10


def test_evaluate_binds_dimensions_from_every_value():
    assert np.array_equal(matdiff.evaluate("eye(n)", "x: vector(n)", x=np.zeros(4)), np.eye(4))
    assert matdiff.evaluate("2*k", "S: matrix(k,k)", S=np.zeros((3, 3))) == 6
    with pytest.raises(matdiff.MatdiffError, match="size of dimension n"):
        matdiff.evaluate("eye(n)")
    with pytest.raises(matdiff.MatdiffError, match="no value given for variable x"):
        matdiff.evaluate("x'*x")


# --- higher orders, mixed, directional ---------------------------------------------------------

HIGHER = [  # scalar expressions with an independent NumPy function
    ("sum(exp(A*x))", "x", "A: matrix(n,n); x: vector(n)",
     lambda v: lambda x: np.sum(np.exp(v["A"] @ x))),
    ("log(det(X))", "X", "X: invertible matrix(n,n)",
     lambda v: lambda x: np.log(np.linalg.det(x))),
    ("(x'*A*x)^2", "x", "A: matrix(n,n); x: vector(n)",
     lambda v: lambda x: (x @ v["A"] @ x) ** 2),
    ("tr(inv(X)*A)", "X", "X: invertible matrix(n,n); A: matrix(n,n)",
     lambda v: lambda x: np.trace(np.linalg.inv(x) @ v["A"])),
]


@pytest.mark.parametrize("expr, wrt, declare, numpy_f", HIGHER)
def test_orders_one_to_three_against_finite_differences(expr, wrt, declare, numpy_f):
    """Order 1 and 2 against differences of the NumPy function and its verified gradient,
    order 3 against differences of the verified order 2; each differential reads back to the
    tensor contracted with a random dX."""
    rng = np.random.default_rng(5)
    values = point(declare, rng, {"n": 2})
    f = numpy_f(values)
    x0 = values[wrt]
    orders = {k: matdiff.derive(expr, wrt, declare=declare, order=k) for k in (1, 2, 3)}
    tensors = {k: r.numpy()(**values) for k, r in orders.items()}
    assert rel(tensors[1], jacobian(f, x0)) < 1e-7
    for k in (2, 3):
        lower = orders[k - 1].numpy()
        reference = jacobian(lambda x, lower=lower: lower(**{**values, wrt: x}), x0)
        assert rel(tensors[k], reference) < 1e-6, k
    dx = rng.standard_normal(np.shape(x0))
    for k, r in orders.items():
        expected = tensors[k]
        for _ in range(k):
            expected = np.tensordot(expected, dx, axes=dx.ndim)
        assert rel(matdiff.evaluate(r.differential.text, declare, **values,
                                    **{"d" + wrt: dx}), expected) < 1e-8, r.differential.text
        assert "[" not in r.text


def test_mixed_second_derivative():
    """wrt=("x", "S"): shape(x) + shape(S), d/dS of the gradient in x (sym convention for
    symmetric S), shown as a bilinear form in dx and dS."""
    declare = "S: symmetric posdef matrix(n,n); x, m: vector(n)"
    expr = "(x - m)'*inv(S)*(x - m)"
    r = matdiff.derive(expr, ("x", "S"), declare=declare)
    assert r.order == 2 and tuple(r.shape) == ("n", "n", "n")
    rng = np.random.default_rng(3)
    s, x, m = posdef(rng, 3), rng.standard_normal(3), rng.standard_normal(3)

    def gradient_x(s_):
        return 2 * np.linalg.solve(s_, x - m)  # independent: d/dx of (x-m)' inv(S) (x-m)

    reference = np.zeros((3, 3, 3))
    for i in range(3):
        for j in range(3):
            e = np.zeros((3, 3))
            e[i, j] += 0.5
            e[j, i] += 0.5
            reference[:, i, j] = along(gradient_x, s, e)
    assert rel(r.numpy()(S=s, x=x, m=m), reference) < 1e-8
    assert r.check() < 1e-6
    assert r.shown_as_differential and set(r.directions) == {"dx", "dS"}
    dx, g = rng.standard_normal(3), rng.standard_normal((3, 3))
    ds = (g + g.T) / 2
    bilinear = np.einsum("i,ijk,jk->", dx, reference, ds)
    assert rel(matdiff.evaluate(r.text, declare, S=s, x=x, m=m, dx=dx, dS=ds), bilinear) < 1e-8
    # the same variable twice: two directions, dX and dX_2; equal to order 2
    twice = matdiff.derive("log(det(X))", ("X", "X"))
    assert set(twice.directions) == {"dX", "dX_2"}
    assert matdiff.parse(twice.differential.text) is matdiff.parse("-tr(inv(X)*dX*inv(X)*dX_2)")
    assert twice.derivative is matdiff.derive("log(det(X))", "X", order=2).derivative


def test_directional_derivatives():
    """direction="W": dF[W]; order 2 the Hessian applied to W, of U's shape."""
    expr = "sum((T - U*V').^2)"
    hvp = matdiff.derive(expr, "U", direction="W", order=2)
    assert tuple(hvp.shape) == hvp.variables["U"].shape
    assert matdiff.parse(hvp.text) is matdiff.parse("2*W*V'*V")
    rng = np.random.default_rng(4)
    t, u, v, w = (rng.standard_normal(s) for s in ((3, 4), (3, 2), (4, 2), (3, 2)))

    def gradient(u_):  # independent: d/dU of sum((T - U V')^2)
        return -2 * (t - u_ @ v.T) @ v

    values = dict(T=t, U=u, V=v, W=w)
    assert rel(hvp.numpy()(**values), along(gradient, u, w)) < 1e-9
    assert rel(matdiff.evaluate(hvp.text, **values), along(gradient, u, w)) < 1e-9
    first = matdiff.derive(expr, "U", direction="W")
    assert first.shape == ()
    f = lambda u_: np.sum((t - u_ @ v.T) ** 2)  # noqa: E731
    assert rel(matdiff.evaluate(first.text, **values), along(f, u, w)) < 1e-9
    assert hvp.check() < 1e-6 and first.check() < 1e-6
    # a direction that is no variable yet takes the wrt's type and symmetry
    sym = matdiff.derive("log(det(S))", "S", declare="S: posdef matrix", direction="V", order=2)
    assert sym.directions["V"].props == frozenset({"symmetric"})
    assert sym.text == "-inv(S)*V*inv(S)"
    with pytest.raises(matdiff.MatdiffError, match="direction x has shape"):
        matdiff.derive("x'*A*y", "A", direction="x")


def test_hessians_of_objectives_with_abs():
    r = matdiff.derive("norm1(x) + x'*A*x", "x", order=2)
    assert r.text == "A + A'"
    assert r.notes and "undefined where u = 0" in r.notes[0]
    assert r.check() < 1e-6


def test_higher_orders_respect_the_size_limit():
    assert matdiff.derive("log(det(X))", "X", order=2, limits={"ir_nodes": 20})
    with pytest.raises(matdiff.LimitError, match="the ir_nodes limit is 20"):
        matdiff.derive("log(det(X))", "X", order=5, limits={"ir_nodes": 20}).numpy()
    # the differential that text shows is derived at once, and held to the limit too
    with pytest.raises(matdiff.LimitError, match="the ir_nodes limit is 12"):
        matdiff.derive("log(det(X))", "X", order=5, limits={"ir_nodes": 12})


@pytest.mark.parametrize("expr, wrt, order, declare", [
    ("A^7", "A", 1, None),
    ("inv(S)*x", "S", 1, "S: symmetric posdef matrix(n,n); x: vector(n)"),
    ("log(det(X))", "X", 2, None),
    ("A*x", "A", 1, None),
    ("tr(A*B)", ("A", "B"), 2, None),
])
def test_a_tensor_shown_by_its_differential_is_built_when_asked_for(expr, wrt, order, declare):
    """derive works out what text shows, the differential, and the tensor of three or more
    axes only when something needs it; both are the same derivative."""
    r = matdiff.derive(expr, wrt, order=order, declare=declare)
    assert callable(r._derivative) and r.shown_as_differential
    shape, text = r.shape, r.text                 # neither builds the tensor
    assert callable(r._derivative)
    assert r.derivative.shape == shape and not callable(r._derivative)
    assert r.check().verdict == "ok"
    eager = matdiff.derive(expr, wrt, order=order, declare=declare)
    eager.derivative                                         # noqa: B018
    assert eager.text == text and eager.index == r.index


@pytest.mark.parametrize("kwargs, message", [
    (dict(order=0), "order must be a whole number"),
    (dict(order=1.5), "order must be a whole number"),
    (dict(wrt=("x", "A"), order=3), "is a derivative of order 2"),
    (dict(wrt=("x", "A"), direction="v"), "a direction needs a single wrt"),
    (dict(wrt=[]), "wrt must be a variable name"),
    (dict(wrt="x", direction="x"), "direction x is the variable itself"),
    (dict(wrt="x", direction="pi"), "direction must be a variable name"),
])
def test_bad_orders_and_directions(kwargs, message):
    with pytest.raises(matdiff.MatdiffError, match=message):
        matdiff.derive("x'*A*x", **{"wrt": "x", **kwargs})
