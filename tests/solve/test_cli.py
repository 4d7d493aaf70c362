"""``matdiff solve``: the steps, the solution and its check; the fallback's report; errors in
one line with exit code 2."""

import re

import numpy as np

import matdiff
from matdiff.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ridge(capsys):
    code, out, err = run(capsys, "solve", "norm2(X*w - y)^2 + lam*w'*w", "--wrt", "w",
                         "--declare", "lam: scalar")
    assert code == 0, err
    assert "  w = inv(lam*eye + X'*X)*X'*y" in out
    assert "1. the gradient in w set to zero (matdiff.derive):" in out
    assert "2*(lam*w + X'*(X*w - y)) = 0" in out
    size = float(re.search(r"is (\S+) of the size of its terms: ok", out).group(1))
    assert size < 1e-9


def test_gaussian_jointly_and_unicode(capsys):
    code, out, err = run(capsys, "solve", "-N/2*logdet(S) - 1/2*tr(inv(S)*(Y - vector(1)*m')'*"
                         "(Y - vector(1)*m'))", "--wrt", "m,S", "--declare",
                         "S: symmetric posdef matrix(d,d); m: vector(d); Y: matrix(N,d); "
                         "N: scalar", "--format", "unicode")
    assert code == 0, err
    assert "  m = Yᵀ𝟏/N" in out
    assert out.rstrip().endswith(": ok")


def test_simplex(capsys):
    code, out, err = run(capsys, "solve", "(R'*vector(1))'*log(w)", "--wrt", "w", "--declare",
                         "w: positive vector(K); R: matrix(n,K)", "--constraint", "simplex")
    assert code == 0, err
    assert "  w = R'*vector(1)/sum(R)" in out
    assert "Lagrange multiplier c = sum(R)" in out


def test_no_closed_form_runs_the_fallback(capsys):
    expr, declare = "1/2*x'*A*x - b'*x + sum(x.^4)", "A: symmetric posdef matrix(d,d); b: vector(d)"
    code, out, err = run(capsys, "solve", expr, "--wrt", "x", "--declare", declare, "--seed", "2")
    assert code == 0, err
    assert "no closed form found: x stays inside the power x.^3" in out
    assert "numeric fallback on random data (seed 2): newton: converged" in out
    # the printed point is the minimiser of the same random data
    sol = matdiff.solve(expr, wrt="x", declare=declare)
    x = sol.minimize(seed=2).values["x"]
    shown = re.search(r"  x = \[(.*)\]", out).group(1)
    assert np.allclose([float(v) for v in shown.split()], x, atol=1e-5)


def test_errors_are_one_line(capsys):
    for argv in (["solve", "x'*A*x +", "--wrt", "x"], ["solve", "x'*A*x", "--wrt", "q"],
                 ["solve", "x'*x", "--wrt", "x", "--constraint", "box"],
                 ["solve", "A*x", "--wrt", "x"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and err.startswith("matdiff: error: ") and "Traceback" not in err


def test_a_leading_minus_is_an_expression(capsys):
    code, out, _ = run(capsys, "solve", "-x'*x + 2*b'*x", "--wrt", "x", "--declare",
                       "b: vector(n)")
    assert code == 0 and "  x = b" in out
