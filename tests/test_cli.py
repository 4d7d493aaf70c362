"""The command line: the example, the derive/check commands, and bad input (a one-line error,
exit code 2, never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from matdiff.cli import main

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))"
DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_no_arguments_derives_the_gaussian(capsys):
    code, out, err = run(capsys)
    assert code == 0, err
    assert "df/dS = 1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))" in out
    assert "df/dm = f*inv(S)*(x - m)" in out
    assert "df/dx = -f*inv(S)*(x - m)" in out
    assert "sym(G) = (G + G')/2" in out
    assert out.count(": ok") == 3


def test_derive_with_check(capsys):
    code, out, _ = run(capsys, "derive", GAUSSIAN, "--wrt", "S", "--declare", DECLARE, "--check")
    assert code == 0
    assert "df/dS = 1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))" in out
    assert "check against central finite differences" in out and out.rstrip().endswith(": ok")


def test_check_command_and_conventions(capsys):
    code, out, _ = run(capsys, "check", "tr(A*S)", "--wrt", "S", "--declare",
                       "S: symmetric matrix", "--symmetric", "cookbook")
    assert code == 0
    assert "Matrix Cookbook" in out and ": ok" in out


def test_json_latex_unicode(capsys):
    code, out, _ = run(capsys, "derive", "x'*A*x", "--wrt", "x", "--format", "json", "--check")
    data = json.loads(out)
    assert data["text"] == "(A + A')*x"
    assert data["latex"] == r"\left(A + A^{\top}\right) x"
    assert data["shape"] == ["n"]
    assert data["check_max_relative_error"] < 1e-8
    code, out, _ = run(capsys, "derive", "inv(X)", "--wrt", "X", "--format", "unicode")
    assert code == 0 and "d(inv(X)) = −X⁻¹dX X⁻¹" in out and "D[i,j,k,l]" in out
    code, out, _ = run(capsys, "derive", "a'*inv(X)*b", "--wrt", "X", "--declare",
                       "a, b: vector", "--format", "unicode")
    assert "X⁻ᵀ" in out


def test_hessian(capsys):
    code, out, _ = run(capsys, "derive", "x'*A*x", "--wrt", "x", "--order", "2", "--check")
    assert code == 0
    assert "d2f/dx2 = A + A'" in out


BAD = [
    # syntax
    ("", "x", None), ("x'*A*", "x", None), ("(x'*A*x", "x", None), ("x'*A*x)", "x", None),
    ("x'*#A*x", "x", None), ("2x", "x", None), ("foo(x)", "x", None), ("tr(A, B)", "A", None),
    ("exp()", "x", None), ("x +* y", "x", None), ("vector(x)", "x", None), ("x..*y", "x", None),
    ("sum(x", "x", None), ("((x)", "x", None), ("x y", "x", None), ("x^", "x", None),
    ("inv", "A", None), ("eye(3)", "x", None), ("x'*A*x;", "x", None), ("x = y", "x", None),
    # typing
    ("A + x", "x", None), ("x + A", "x", None), ("x*y", "x", None), ("x'*x'", "x", None),
    ("A*x'", "x", None), ("inv(x)", "x", None), ("det(x)", "x", None), ("tr(x)", "x", None),
    ("x/y", "x", None), ("A^x", "A", None), ("x^2", "x", None), ("A .* x", "x", None),
    ("x' + x", "x", None), ("A*B", "A", "A: matrix(2,3); B: matrix(2,3)"),
    ("A*x", "x", "A: matrix(2,2); x: vector(3)"), ("inv(A)", "A", "A: matrix(2,3)"),
    ("diag(a)", "a", None), ("2.^x", "x", None), ("x'*A*x", "x", "A: matrix(m,n)"),
    ("logdet(A*B)", "A", "A: matrix(m,n); B: matrix(m,n)"),
    # declarations
    ("x'*S*x", "x", "S: symetric matrix"), ("x'*S*x", "x", "x: symmetric vector"),
    ("x'*S*x", "x", "S: symmetric matrix(2,3)"), ("x'*S*x", "x", "S matrix"),
    ("x'*S*x", "x", "pi: scalar"), ("x'*S*x", "x", "x: vector; x: vector"),
    ("x'*S*x", "x", "x: vector(0)"), ("x'*S*x", "x", "x: tensor"),
    # differentiation
    ("x'*A*x", "y", None), ("x'*A*x", "pi", None), ("A*x", "x", "ORDER2"),
    ("x'*S*x", "S", "S: symmetric matrix; COOKBOOK2"),
]


def _argv(expr, wrt, declare):
    argv = ["derive", expr, "--wrt", wrt]
    declare = declare or ""
    if "ORDER2" in declare or "COOKBOOK2" in declare:
        argv += ["--order", "2"]
    if "COOKBOOK2" in declare:
        argv += ["--symmetric", "cookbook"]
    declare = declare.replace("; COOKBOOK2", "").replace("ORDER2", "")
    if declare:
        argv += ["--declare", declare]
    return argv


def test_there_are_at_least_fifty_bad_inputs():
    assert len(BAD) >= 50


@pytest.mark.parametrize("expr, wrt, declare", BAD)
def test_bad_input_is_a_clear_error(capsys, expr, wrt, declare):
    code, out, err = run(capsys, *_argv(expr, wrt, declare))
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("matdiff: error: ")
    assert len(lines[0]) > len("matdiff: error: ") + 10
    assert len(lines) in (1, 3)  # the message, and maybe the source with a caret under it


def test_a_real_process_exits_2_without_traceback():
    done = subprocess.run([sys.executable, "-m", "matdiff", "derive", "x'*A*(x", "--wrt", "x"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "column" in done.stderr


def test_sign_derivative_is_zero_with_a_note(capsys):
    code, out, _ = run(capsys, "derive", "sum(abs(x)) + x'*x", "--wrt", "x", "--order", "2",
                       "--check")
    assert code == 0
    assert "d2f/dx2 = 2*eye(n)" in out and ": ok" in out
    assert "note: sign(u) is taken to have derivative 0" in out


def test_tensor_shown_as_its_differential_then_vec_then_index_form(capsys):
    code, out, _ = run(capsys, "derive", "inv(X)", "--wrt", "X", "--check")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[1] == "d(inv(X)) = -inv(X)*dX*inv(X)"
    assert lines[2] == "  vec form: d vec(F) = J d vec(X), J = -kron(inv(X)', inv(X))   (n*n×n*n)"
    assert lines[3].startswith("  index form: D[i,j,k,l] = ")
    assert ": ok" in out


def test_differential_line_direction_mixed_and_higher_orders(capsys):
    code, out, _ = run(capsys, "derive", "log(det(X))", "--wrt", "X")
    assert "differential: d(log(det(X))) = tr(inv(X)*dX)" in out
    code, out, _ = run(capsys, "check", "sum((T - U*V').^2)", "--wrt", "U", "--direction", "W",
                       "--order", "2")
    assert code == 0 and "d2f/dU2 applied to W = 2*W*V'*V" in out and ": ok" in out
    code, out, _ = run(capsys, "check", "x'*S*x", "--wrt", "x,S", "--declare",
                       "S: symmetric matrix")
    assert code == 0 and ": ok" in out and "d2(x'*S*x) = 2*x'*dS*dx" in out
    code, out, _ = run(capsys, "check", "sum(exp(x))", "--wrt", "x", "--order", "3")
    assert code == 0 and ": ok" in out


def test_vec_form_on_request_and_its_absence_explained(capsys):
    code, out, _ = run(capsys, "derive", "x'*A*x", "--wrt", "x", "--vec")
    assert code == 0 and "vec form: df = J d vec(x), J = ((A + A')*x)'   (1×n)" in out
    code, out, _ = run(capsys, "derive", "log(det(X))", "--wrt", "X", "--order", "2",
                       "--format", "unicode")
    assert "vec form: d2f = vec(dX)'*H*vec(dX), H = −K(n, n)(X⁻ᵀ ⊗ X⁻¹)" in out
    code, out, _ = run(capsys, "derive", "diag(diag(X))", "--wrt", "X")
    assert code == 0 and "vec form: none (no Kronecker form: " in out


def test_layouts_are_stated(capsys):
    code, out, _ = run(capsys, "check", "A*X*B", "--wrt", "X", "--layout", "numerator")
    assert code == 0 and "dF/dX = kron(B', A)" in out and "numerator layout" in out
    assert ": ok" in out
    code, out, _ = run(capsys, "derive", "x'*A*x", "--wrt", "x", "--layout", "denominator")
    assert "df/dx = (A + A')*x" in out and "shape: n×1" in out and "denominator layout" in out
    code, out, _ = run(capsys, "derive", "x'*A*x", "--wrt", "x", "--format", "json",
                       "--layout", "numerator")
    data = json.loads(out)
    assert data["layout"] == "numerator" and data["shape"] == ["1", "n"]
    assert data["vec"] == "((A + A')*x)'" and data["vec_reason"] is None
    code, _, err = run(capsys, "derive", "diag(diag(X))", "--wrt", "X", "--layout",
                       "numerator")
    assert code == 2 and "no Kronecker form" in err and "\n" not in err.strip()


def test_emit_prints_a_function_that_runs(capsys, tmp_path):
    code, out, _ = run(capsys, "derive", "norm2(T - U*V')^2", "--wrt", "U", "--emit", "numpy")
    assert code == 0
    namespace: dict = {}
    exec(out, namespace)
    import numpy as np
    rng = np.random.default_rng(0)
    t, u, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    assert np.allclose(namespace["df_dU"](T=t, U=u, V=v), -2 * (t - u @ v.T) @ v, rtol=1e-12)
    assert namespace["check_gradient"]() < 1e-6


def test_emit_of_an_unknown_backend_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "derive", "x'*x", "--wrt", "x", "--emit", "fortran")
    assert exit_.value.code == 2


def test_maps_with_merged_axes_print_all_views(capsys):
    """kron and vec results: the differential, the vec form (or why none), the index form
    with merged indices as tuples."""
    assert main(["derive", "kron(A, B)", "--wrt", "A"]) == 0
    out = capsys.readouterr().out
    assert "d(kron(A, B)) = kron(dA, B)" in out and "index form: D[i,j,k,l] = delta(i,(" in out
    assert main(["derive", "vec(X)'*W*vec(X)", "--wrt", "X", "--format", "json"]) == 0
    assert '"vec": "((W + W\')*vec(X))\'"' in capsys.readouterr().out
