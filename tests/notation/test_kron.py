"""kron, vec and the commutation matrix: their identities evaluated numerically, their
derivatives against finite differences, and the Kronecker (vec) forms of derivatives against
independent NumPy answers."""

from __future__ import annotations

import numpy as np
import pytest

import matdiff
from matdiff.numeric.codegen import compile_numpy
from matdiff.syntax.types import parse_declarations

RNG = np.random.default_rng(5)


def evaluate(text: str, declare: str, **values) -> np.ndarray:
    """The value of ``text`` read with matdiff's parser and evaluated by its code generator."""
    shapes = {name: decl.shape for name, decl in parse_declarations(declare).items()}
    return compile_numpy(matdiff.parse(text, declare), shapes)(**values)


def vec(a: np.ndarray) -> np.ndarray:
    return np.reshape(a, -1, order="F")


def commutation(m: int, n: int) -> np.ndarray:
    """K with K @ vec(A) = vec(A.T) for an m×n A, built entry by entry."""
    k = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            k[j + n * i, i + m * j] = 1.0
    return k


def jacobian_by_differences(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """J with vec(f(x + dX)) ≈ vec(f(x)) + J vec(dX), by central differences."""
    columns = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = step
        dx = np.reshape(e, x.shape, order="F")
        columns.append((vec(np.atleast_1d(f(x + dx))) - vec(np.atleast_1d(f(x - dx))))
                       / (2 * step))
    return np.stack(columns, axis=1)


M, N, P, Q = 2, 3, 4, 2
A, B, C = RNG.standard_normal((M, N)), RNG.standard_normal((P, Q)), RNG.standard_normal((N, P))
DECLARE = f"A: matrix({M},{N}); B: matrix({P},{Q}); C: matrix({N},{P}); x: vector({N}); " \
          f"y: vector({P})"
X_VALUES = dict(A=A, B=B, C=C, x=RNG.standard_normal(N), y=RNG.standard_normal(P))


# --- the language: kron, vec, commutation --------------------------------------------------------

@pytest.mark.parametrize("text, oracle", [
    ("kron(A, B)", lambda v: np.kron(v["A"], v["B"])),
    ("kron(x, y)", lambda v: np.kron(v["x"], v["y"])),
    ("kron(x', B)", lambda v: np.kron(v["x"][None, :], v["B"])),
    ("kron(A, y)", lambda v: np.kron(v["A"], v["y"][:, None])),
    ("kron(x, y')", lambda v: np.outer(v["x"], v["y"])),
    ("kron(2, A)", lambda v: 2 * v["A"]),
    ("vec(A)", lambda v: vec(v["A"])),
    ("vec(x')", lambda v: v["x"]),
    ("vec(A*C*B)", lambda v: vec(v["A"] @ v["C"] @ v["B"])),
    ("kron(B', A)*vec(C)", lambda v: vec(v["A"] @ v["C"] @ v["B"])),
    ("commutation(2, 3)*vec(A)", lambda v: vec(v["A"].T)),
    ("commutation(2, 3)", lambda v: commutation(2, 3)),
    ("commutation(2, 3)'", lambda v: commutation(3, 2)),
    ("commutation(3, 2)*commutation(2, 3)", lambda v: np.eye(6)),
    ("kron(A, B)*kron(C, B')", lambda v: np.kron(v["A"] @ v["C"], v["B"] @ v["B"].T)),
    ("kron(A, B)'", lambda v: np.kron(v["A"].T, v["B"].T)),
    ("commutation(4, 2)*kron(A, B)*commutation(3, 2)",  # K(p,m)(A⊗B)K(n,q) = B⊗A
     lambda v: np.kron(v["B"], v["A"])),
    ("eye(2*3) - kron(eye(3), eye(2))", lambda v: np.zeros((6, 6))),
    ("vec(A)'*vec(A)", lambda v: np.sum(v["A"] ** 2)),
    ("vec(A*C*B)'*kron(B', A)*vec(C)", lambda v: np.sum((v["A"] @ v["C"] @ v["B"]) ** 2)),
])
def test_kron_vec_and_commutation_evaluate_as_numpy(text, oracle):
    got = evaluate(text, DECLARE, **X_VALUES)
    np.testing.assert_allclose(got, oracle(X_VALUES), rtol=1e-12, atol=1e-12)


def test_shapes_are_products_of_dimensions():
    r = matdiff.parse("kron(A, B)", "A: matrix(m,n); B: matrix(p,q)")
    assert [str(d) for d in r.shape] == ["m*p", "n*q"]
    assert [str(d) for d in matdiff.parse("vec(A)", "A: matrix(m,n)").shape] == ["m*n"]
    # products of unknown dimensions meet factor by factor: kron(B', A)*vec(X) is vec(A*X*B)
    assert matdiff.parse("kron(B', A)*vec(X) - vec(A*X*B)").ndim == 1
    assert matdiff.parse("vec(X)'*W*vec(X)", "X: matrix(3,3); W: matrix(9,9)").ndim == 0


# --- derivatives of kron, vec and commutation -----------------------------------------------------

@pytest.mark.parametrize("text, wrt, numpy_f", [
    ("vec(X)'*W*vec(X)", "X", lambda X, v: vec(X) @ v["W"] @ vec(X)),
    ("vec(X)'*kron(B', A)*vec(X)", "X", lambda X, v: vec(X) @ np.kron(v["B"].T, v["A"]) @ vec(X)),
    ("sum(kron(X, x))", "X", lambda X, v: np.sum(np.kron(X, v["x"][:, None]))),
    ("kron(A, X)", "X", lambda X, v: np.kron(v["A"], X)),
    ("kron(X, X')", "X", lambda X, v: np.kron(X, X.T)),
    ("commutation(3, 3)*vec(X*X)", "X", lambda X, v: commutation(3, 3) @ vec(X @ X)),
    ("vec(X)", "X", lambda X, v: vec(X)),
])
def test_derivatives_of_kron_and_vec_match_finite_differences(text, wrt, numpy_f):
    declare = "X: matrix(3,3); W: matrix(9,9); A: matrix(3,3); B: matrix(3,3); x: vector(2)"
    values = {"X": RNG.standard_normal((3, 3)), "W": RNG.standard_normal((9, 9)),
              "A": RNG.standard_normal((3, 3)),
              "B": RNG.standard_normal((3, 3)), "x": RNG.standard_normal(2)}
    r = matdiff.derive(text, wrt, declare=declare)
    used = {k: v for k, v in values.items() if k in r.variables}
    d = r.numpy()(**used)
    rows = int(np.prod(d.shape[: r.function.ndim], dtype=int))
    got = np.reshape(d, (rows, -1), order="F")
    want = jacobian_by_differences(lambda X: numpy_f(X, values), values["X"])
    np.testing.assert_allclose(got, np.reshape(want, got.shape), rtol=1e-6, atol=1e-6)


def test_gradient_through_vec_reads_as_matrices():
    """A summed index that only merged axes carry is unmerged: vec(X)'*kron(B', A)*vec(X) is
    tr(B*X'*A*X), and its gradient is A*X*B + A'*X*B'."""
    r = matdiff.derive("vec(X)'*kron(B', A)*vec(X)", "X")
    assert r.function_text == "tr(B*X'*A*X)"
    assert r.text == "A*X*B + A'*X*B'"
    assert r.check() < 1e-8


# --- vec forms of derivatives ---------------------------------------------------------------------

def inv(a):
    return np.linalg.inv(a)


SQUARE = "X: invertible matrix(n,n); A: matrix(n,n)"
TEXTBOOK = [
    # expression, wrt, declare, order, vec form, independent NumPy J (v: values)
    ("A*X*B", "X", "A: matrix(m,n); X: matrix(n,p); B: matrix(p,q)", 1, "kron(B', A)",
     lambda v: np.kron(v["B"].T, v["A"])),
    ("inv(X)", "X", SQUARE, 1, "-kron(inv(X)', inv(X))",
     lambda v: -np.kron(inv(v["X"]).T, inv(v["X"]))),
    ("X'", "X", "X: matrix(m,n)", 1, "commutation(m, n)",
     lambda v: commutation(*v["X"].shape)),
    ("X", "X", "X: matrix(m,n)", 1, "eye(m*n)", lambda v: np.eye(v["X"].size)),
    ("X*a", "X", "X: matrix(m,n); a: vector(n)", 1, "kron(a', eye(m))",
     lambda v: np.kron(v["a"][None, :], np.eye(v["X"].shape[0]))),
    ("x*a'", "x", "x: vector(n); a: vector(m)", 1, "kron(a, eye(n))",
     lambda v: np.kron(v["a"][:, None], np.eye(v["x"].size))),
    ("X*X", "X", SQUARE, 1, "kron(eye(n), X) + kron(X', eye(n))",
     lambda v: np.kron(v["X"].T, np.eye(len(v["X"]))) + np.kron(np.eye(len(v["X"])), v["X"])),
    ("exp(X)", "X", "X: matrix(m,n)", 1, "diag(vec(exp(X)))",
     lambda v: np.diag(vec(np.exp(v["X"])))),
    ("exp(A*X)", "X", "A: matrix(m,n); X: matrix(n,p)", 1,
     "diag(vec(exp(A*X)))*kron(eye(p), A)",
     lambda v: np.diag(vec(np.exp(v["A"] @ v["X"]))) @ np.kron(np.eye(v["X"].shape[1]),
                                                              v["A"])),
    ("A*tr(X)", "X", "A: matrix(m,n); X: matrix(p,p)", 1, "vec(A)*vec(eye(p))'",
     lambda v: np.outer(vec(v["A"]), vec(np.eye(len(v["X"]))))),
    ("det(X)", "X", SQUARE, 1, "vec(det(X)*inv(X)')'",
     lambda v: np.linalg.det(v["X"]) * vec(inv(v["X"]).T)[None, :]),
    ("x'*A*x", "x", "x: vector(n); A: matrix(n,n)", 1, "((A + A')*x)'",
     lambda v: ((v["A"] + v["A"].T) @ v["x"])[None, :]),
    ("A*x", "x", "x: vector(n); A: matrix(m,n)", 1, "A", lambda v: v["A"]),
    ("tr(X'*A*X)", "X", "X: matrix(n,p); A: matrix(n,n)", 2, "kron(eye(p), A + A')",
     lambda v: np.kron(np.eye(v["X"].shape[1]), v["A"] + v["A"].T)),
    ("log(det(X))", "X", SQUARE, 2, "-commutation(n, n)*kron(inv(X)', inv(X))",
     lambda v: -commutation(len(v["X"]), len(v["X"])) @ np.kron(inv(v["X"]).T, inv(v["X"]))),
    ("x'*A*x", "x", "x: vector(n); A: matrix(n,n)", 2, "A + A'", lambda v: v["A"] + v["A"].T),
]


def point(declare: str) -> dict[str, np.ndarray]:
    sizes = {"m": 2, "n": 3, "p": 4, "q": 2}
    values = {}
    for name, decl in parse_declarations(declare).items():
        shape = tuple(sizes[d] for d in decl.shape)
        value = RNG.standard_normal(shape)
        if "invertible" in decl.props:
            value = value + 3 * np.eye(shape[0])
        values[name] = value
    return values


@pytest.mark.parametrize("expr, wrt, declare, order, text, oracle", TEXTBOOK,
                         ids=[f"{t[0]}/d{t[1]}^{t[3]}" for t in TEXTBOOK])
def test_textbook_vec_forms(expr, wrt, declare, order, text, oracle):
    """The printed vec form is the textbook one, and it reads back to the independent NumPy
    matrix (and to matdiff's tensor reshaped column-major)."""
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    assert r.vec is not None, r.vec_reason
    assert r.vec.text == text
    values = point(declare)
    want = oracle(values)
    read_back = compile_numpy(matdiff.parse(r.vec.text, declare),
                              {n: d.shape for n, d in r.variables.items()})(**values)
    np.testing.assert_allclose(np.reshape(read_back, want.shape), want, rtol=1e-9, atol=1e-9)
    tensor = r.numpy()(**values)
    np.testing.assert_allclose(np.reshape(tensor, want.shape, order="F"), want, rtol=1e-9,
                               atol=1e-9)


def test_a_zero_derivative_is_a_zero_matrix_of_stated_size():
    r = matdiff.derive("X*0", "X", declare="X: matrix(m,n)")
    assert r.vec.text == "matrix(0, m*n, m*n)"
    values = {"X": RNG.standard_normal((2, 3))}
    np.testing.assert_array_equal(matdiff.evaluate(r.vec.text, "X: matrix(m,n)", **values),
                                  np.zeros((6, 6)))


def test_vec_form_of_a_hessian_is_symmetric():
    r = matdiff.derive("log(det(X))", "X", declare=SQUARE, order=2)
    values = point(SQUARE)
    h = compile_numpy(matdiff.parse(r.vec.text, SQUARE),
                      {n: d.shape for n, d in r.variables.items()})(**values)
    np.testing.assert_allclose(h, h.T, atol=1e-12)


def test_vec_forms_in_latex_and_unicode():
    r = matdiff.derive("inv(X)", "X", declare=SQUARE)
    assert r.vec.latex == r"-X^{-\top} \otimes X^{-1}"
    assert r.vec.unicode == "−X⁻ᵀ ⊗ X⁻¹"
    t = matdiff.derive("X'", "X", declare="X: matrix(m,n)").vec
    assert (t.latex, t.unicode) == ("K_{m,n}", "K(m, n)")
    h = matdiff.derive("tr(X'*A*X)", "X", declare="X: matrix(n,p); A: matrix(n,n)", order=2)
    assert h.vec.latex == r"I_{p} \otimes \left(A + A^{\top}\right)"
    assert h.vec.unicode == "Iₚ ⊗ (A + Aᵀ)"
    assert matdiff.derive("exp(X)", "X").vec.latex == \
        r"\operatorname{diag}\left(\operatorname{vec}\left(\exp\left(X\right)\right)\right)"


@pytest.mark.parametrize("expr, wrt, why", [
    ("diag(diag(X))", "X", "couples the indices"),
    ("kron(A, X)", "X", "merged axes"),
])
def test_no_kronecker_form_says_why(expr, wrt, why):
    r = matdiff.derive(expr, wrt)
    assert r.vec is None
    assert why in r.vec_reason and "\n" not in r.vec_reason
