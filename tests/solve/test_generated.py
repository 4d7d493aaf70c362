"""Generated objectives: random sums of quadratic and linear terms in a vector or a matrix
unknown. The oracle is NumPy on the normal equations the terms add up to (built here term by
term, Kronecker products for the matrix case), never the solver's own output."""

import numpy as np
import pytest

import matdiff

from .helpers import relative


def _spd(rng, n):
    g = rng.normal(size=(n, n))
    return g @ g.T / n + np.eye(n)


# vector unknown x of size n: (text, declarations, data, its Hessian, its -gradient at 0)
def _vector_term(kind, k, rng, n, rows):
    if kind == "quadratic":
        A = _spd(rng, n)
        return (f"1/2*x'*A{k}*x", f"A{k}: symmetric posdef matrix(n,n)", {f"A{k}": A}, A, 0)
    if kind == "ridge":
        c = rng.uniform(0.1, 2)
        return (f"c{k}/2*x'*x", f"c{k}: positive scalar", {f"c{k}": c}, c * np.eye(n), 0)
    if kind == "squares":
        X, y = rng.normal(size=(rows, n)), rng.normal(size=rows)
        return (f"norm2(X{k}*x - y{k})^2", f"X{k}: matrix(r{k},n); y{k}: vector(r{k})",
                {f"X{k}": X, f"y{k}": y}, 2 * X.T @ X, 2 * X.T @ y)
    if kind == "weighted":
        X, y, q = rng.normal(size=(rows, n)), rng.normal(size=rows), rng.uniform(0.1, 2, rows)
        return (f"(X{k}*x - y{k})'*diag(q{k})*(X{k}*x - y{k})",
                f"X{k}: matrix(r{k},n); y{k}: vector(r{k}); q{k}: positive vector(r{k})",
                {f"X{k}": X, f"y{k}": y, f"q{k}": q}, 2 * X.T @ (q[:, None] * X),
                2 * X.T @ (q * y))
    if kind == "inverse":
        A = _spd(rng, n)
        return (f"1/2*x'*inv(A{k})*x", f"A{k}: symmetric posdef matrix(n,n)", {f"A{k}": A},
                np.linalg.inv(A), 0)
    b = rng.normal(size=n)
    return (f"-b{k}'*x", f"b{k}: vector(n)", {f"b{k}": b}, 0, b)


@pytest.mark.parametrize("seed", range(10))
def test_generated_vector_problems(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    kinds = list(rng.choice(["quadratic", "ridge", "squares", "weighted", "linear"],
                            size=int(rng.integers(1, 4))))
    kinds = ["quadratic" if seed % 2 else "inverse"] + kinds
    terms = [_vector_term(kind, k, rng, n, n + 5) for k, kind in enumerate(kinds)]
    expr = " + ".join(t[0] for t in terms)
    declare = "; ".join(["x: vector(n)"] + [t[1] for t in terms])
    data = {name: v for t in terms for name, v in t[2].items()}
    H = sum(t[3] for t in terms) + np.zeros((n, n))
    g = sum(t[4] for t in terms) + np.zeros(n)
    sol = matdiff.solve(expr, wrt="x", declare=declare)
    assert sol.closed, (expr, sol.reason)
    assert relative(sol.values(**data)["x"], np.linalg.solve(H, g)) < 1e-9, (expr, sol.text)
    assert sol.check(seed) < 1e-9


@pytest.mark.parametrize("seed", range(8))
def test_generated_matrix_problems(seed):
    """Terms A*X*B of one shape of sides: all on the left, all on the right, or one term on
    both; solved against vec(sum A*X*B) = sum kron(B', A)*vec(X)."""
    rng = np.random.default_rng(seed)
    p, q = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    side = ["left", "right", "both"][seed % 3]
    count = 1 if side == "both" else int(rng.integers(1, 4))
    texts, decls, data, K = [], ["X: matrix(p,q)", "C: matrix(p,q)"], {}, np.zeros((p * q,) * 2)
    for k in range(count):
        A = _spd(rng, p) if side != "right" else np.eye(p)
        B = _spd(rng, q) if side != "left" else np.eye(q)
        if side == "left":
            texts.append(f"1/2*tr(A{k}*X*X')")
        elif side == "right":
            texts.append(f"1/2*tr(X*B{k}*X')")
        else:
            texts.append(f"1/2*tr(A{k}*X*B{k}*X')")
        if side != "right":
            decls.append(f"A{k}: symmetric posdef matrix(p,p)")
            data[f"A{k}"] = A
        if side != "left":
            decls.append(f"B{k}: symmetric posdef matrix(q,q)")
            data[f"B{k}"] = B
        K += np.kron(B.T, A)
    if rng.uniform() < 0.5:                 # and a scalar multiple, which fits every side
        texts.append("c/2*tr(X'*X)")
        decls.append("c: positive scalar")
        data["c"] = 0.5
        K += 0.5 * np.eye(p * q)
    C = rng.normal(size=(p, q))
    data["C"] = C
    expr = " + ".join(texts) + " - tr(C'*X)"
    sol = matdiff.solve(expr, wrt="X", declare="; ".join(decls))
    if side == "both" and "c" in data:      # A*X*B + c*X: a Sylvester-type equation
        assert not sol.closed and "Sylvester" in sol.reason
        return
    assert sol.closed, (expr, sol.reason)
    want = np.linalg.solve(K, C.reshape(-1, order="F")).reshape((p, q), order="F")
    assert relative(sol.values(**data)["X"], want) < 1e-9, (expr, sol.text)
    assert sol.check(seed) < 1e-9
