r"""LaTeX input: formulas as papers and Q&A posts write them parse to what the text syntax means.

Each input is compared with the text-syntax parse of a hand-written equivalent: the same IR node,
or (where the two are written differently) the same value at random points.
"""

from __future__ import annotations

import numpy as np
import pytest

import matdiff
from matdiff import MatdiffError
from matdiff.numeric.codegen import compile_numpy
from matdiff.syntax.parse import parse_typed

SEED = (r"\frac{1}{\sqrt{(2\pi)^k |\Sigma|}}\exp\left( -\frac{1}{2}(\textbf{x}-\boldsymbol \mu)^T"
        r"\Sigma^{-1}(\textbf{x}-\boldsymbol \mu)\right)")
SEED_DECLARE = "Sigma: symmetric posdef matrix(k,k); x, mu: vector(k); k: scalar"
README_GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
README_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
README_IN_GREEK = "(2*pi)^(-k/2)*det(Sigma)^(-1/2)*exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))"


def values_for(variables: dict, rng: np.random.Generator, size: int = 3) -> dict:
    """Random values: every dimension `size`, matrices symmetric positive definite, scalars
    positive, so that det, log and sqrt are defined wherever the formulas use them."""
    values = {}
    for name, decl in variables.items():
        rank = len(decl.shape)
        if rank == 0:
            values[name] = float(rng.uniform(0.5, 1.5))
        elif rank == 1:
            values[name] = rng.uniform(0.1, 0.4, size)
        else:
            a = rng.standard_normal((size, size))
            values[name] = a @ a.T / size + np.eye(size)
    return values


def value(text: str, declare, syntax: str, values: dict) -> np.ndarray:
    root, variables = parse_typed(text, declare, syntax)
    expr = matdiff.parse(text, declare, syntax=syntax)
    return compile_numpy(expr, {n: d.shape for n, d in variables.items()})(**values)


def assert_same_expression(latex: str, text: str, text_declare, latex_declare=None) -> None:
    ir_latex = matdiff.parse(latex, latex_declare, syntax="latex")
    ir_text = matdiff.parse(text, text_declare, syntax="text")
    if ir_latex is ir_text:
        return
    _, latex_vars = parse_typed(latex, latex_declare, "latex")
    _, text_vars = parse_typed(text, text_declare, "text")
    assert {n: len(d.shape) for n, d in latex_vars.items()} == \
        {n: len(d.shape) for n, d in text_vars.items()}
    rng = np.random.default_rng(0)
    for _ in range(2):
        point = values_for(text_vars, rng)
        np.testing.assert_allclose(value(latex, latex_declare, "latex", point),
                                   value(text, text_declare, "text", point), rtol=1e-10)


# --- the seed ------------------------------------------------------------------------------------

def test_seed_parses_to_the_text_form() -> None:
    text = "1/sqrt((2*pi)^k*det(Sigma))*exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))"
    assert matdiff.parse(SEED, SEED_DECLARE) is matdiff.parse(text, SEED_DECLARE)
    assert matdiff.parse(SEED, SEED_DECLARE) is matdiff.parse(README_IN_GREEK, SEED_DECLARE)


def test_seed_derivative_reads_as_the_textbook_form() -> None:
    r = matdiff.derive(SEED, "Sigma", declare=SEED_DECLARE)
    assert r.abbreviated() == "1/2*f*(inv(Sigma)*(x - mu)*(x - mu)'*inv(Sigma) - inv(Sigma))"


@pytest.mark.parametrize("wrt, text_wrt", [("Sigma", "S"), ("mu", "m"), ("x", "x")])
def test_seed_derivatives_match_the_text_form(wrt: str, text_wrt: str) -> None:
    from_latex = matdiff.derive(SEED, wrt, declare=SEED_DECLARE)
    from_text = matdiff.derive(README_GAUSSIAN, text_wrt, declare=README_DECLARE)
    assert from_latex.check() < 1e-8
    rng = np.random.default_rng(1)
    for _ in range(3):
        point = values_for(from_latex.variables, rng)
        renamed = {"S": point["Sigma"], "m": point["mu"], "x": point["x"], "k": 3.0}
        point["k"] = 3.0
        np.testing.assert_allclose(from_latex.numpy()(**point), from_text.numpy()(**renamed),
                                   rtol=1e-10)
    greek = matdiff.derive(README_IN_GREEK, wrt, declare=SEED_DECLARE)
    assert from_latex.derivative is greek.derivative


def test_seed_kinds_come_from_typography_and_usage_without_declarations() -> None:
    r = matdiff.derive(SEED, "Sigma")
    assert r.declarations == "k: scalar; Sigma: matrix(n,n); x: vector(n); mu: vector(n)"
    assert r.check() < 1e-8


def test_wrt_may_be_written_as_in_latex_or_unicode() -> None:
    by_name = matdiff.derive(SEED, "Sigma", declare=SEED_DECLARE).derivative
    assert matdiff.derive(SEED, r"\Sigma", declare=SEED_DECLARE).derivative is by_name
    assert matdiff.derive(SEED, "Σ", declare=SEED_DECLARE).derivative is by_name
    mu = matdiff.derive(SEED, "mu", declare=SEED_DECLARE).derivative
    assert matdiff.derive(SEED, r"\boldsymbol\mu", declare=SEED_DECLARE).derivative is mu


# --- formulas from the literature ----------------------------------------------------------------

LSQ = "y, w: vector; X: matrix"
FORMULAS = [
    # least squares
    (r"\|\mathbf{y} - X\boldsymbol{\beta}\|_2^2", "norm2(y - X*beta)^2", "y, beta: vector"),
    (r"\frac{1}{2n}\left\| \mathbf{y} - \mathbf{X}\mathbf{w} \right\|^2",
     "1/(2*n)*norm2(y - X*w)^2", LSQ + "; n: scalar"),
    (r"(\mathbf{y}-X\mathbf{w})^\top(\mathbf{y}-X\mathbf{w})", "(y - X*w)'*(y - X*w)", LSQ),
    (r"\mathbf{w}^{\top}X^{\top}X\mathbf{w} - 2\mathbf{y}^{\top}X\mathbf{w} + "
     r"\mathbf{y}^{\top}\mathbf{y}", "w'*X'*X*w - 2*y'*X*w + y'*y", LSQ),
    (r"(\mathbf{y} - A\mathbf{x})^T W (\mathbf{y} - A\mathbf{x})", "(y - A*x)'*W*(y - A*x)",
     None),
    # ridge and lasso
    (r"\|\mathbf{y} - X\mathbf{w}\|_2^2 + \lambda \|\mathbf{w}\|_2^2",
     "norm2(y - X*w)^2 + lambda*norm2(w)^2", LSQ + "; lambda: scalar"),
    (r"\frac{1}{2}\lVert X\beta - y \rVert^{2} + \frac{\lambda}{2}\lVert \beta \rVert^{2}",
     "1/2*norm2(X*beta - y)^2 + lambda/2*norm2(beta)^2", "beta, y: vector; lambda: scalar"),
    (r"\mathbf{w}^\top (X^\top X + \lambda I)\mathbf{w}", "w'*(X'*X + lambda*eye)*w",
     "lambda: scalar"),
    (r"\lambda\|\mathbf{w}\|_1 + \frac{1}{2}\|\mathbf{y}-X\mathbf{w}\|_2^2",
     "lambda*norm1(w) + 1/2*norm2(y - X*w)^2", LSQ + "; lambda: scalar"),
    # logistic regression
    (r"\sum \log\left(1 + \exp(-\mathbf{y} \odot X\mathbf{w})\right)",
     "sum(log(vector(1) + exp(-y.*(X*w))))", LSQ),
    (r"\mathbf{1}^\top\log(\mathbf{1} + e^{-\mathbf{y}\circ(X\mathbf{w})})",
     "vector(1)'*log(vector(1) + exp(-y.*(X*w)))", LSQ),
    (r"-\mathbf{y}^\top \log\boldsymbol{s} - (\mathbf{1}-\mathbf{y})^\top\log(\mathbf{1}-"
     r"\boldsymbol{s})", "-y'*log(s) - (vector(1) - y)'*log(vector(1) - s)", "y, s: vector"),
    (r"\log(1+\exp(-y\,\mathbf{w}^T\mathbf{x}))", "log(1 + exp(-y*w'*x))", "y: scalar"),
    # Gaussian log-likelihood
    (r"-\frac{k}{2}\log(2\pi) - \frac{1}{2}\log|\Sigma| - \frac{1}{2}(\mathbf{x}-"
     r"\boldsymbol{\mu})^\top\Sigma^{-1}(\mathbf{x}-\boldsymbol{\mu})",
     "-k/2*log(2*pi) - 1/2*log(det(Sigma)) - 1/2*(x - mu)'*inv(Sigma)*(x - mu)",
     "k: scalar; mu: vector"),
    (r"-\frac{n}{2}\log\det\Sigma - \frac12\operatorname{tr}(\Sigma^{-1}S)",
     "-n/2*log(det(Sigma)) - 1/2*tr(inv(Sigma)*S)", "n: scalar"),
    (r"\log \det(\boldsymbol\Lambda) - \operatorname{tr}(S\boldsymbol\Lambda)",
     "log(det(Lambda)) - tr(S*Lambda)", None),
    # Gaussian density
    (SEED, "1/sqrt((2*pi)^k*det(Sigma))*exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))",
     "k: scalar; mu: vector"),
    (r"(2\pi)^{-k/2}|\Sigma|^{-1/2}\exp\left(-\tfrac{1}{2}(x-\mu)^{\top}\Sigma^{-1}(x-\mu)"
     r"\right)", "(2*pi)^(-k/2)*det(Sigma)^(-1/2)*exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))",
     "k: scalar; mu: vector"),
    (r"\frac{\exp\left(-\frac{1}{2}(\mathbf{x}-\boldsymbol{\mu})^{\mathsf{T}}\boldsymbol{"
     r"\Sigma}^{-1}(\mathbf{x}-\boldsymbol{\mu})\right)}{\sqrt{(2\pi)^k\det\boldsymbol{\Sigma}}}",
     "exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))/sqrt((2*pi)^k*det(Sigma))",
     "k: scalar; mu: vector"),
    # KL divergence between Gaussians
    (r"\frac{1}{2}\left[\operatorname{tr}(\Sigma_2^{-1}\Sigma_1) + (\mu_2-\mu_1)^\top"
     r"\Sigma_2^{-1}(\mu_2-\mu_1) - k + \ln\frac{\det\Sigma_2}{\det\Sigma_1}\right]",
     "1/2*(tr(inv(Sigma_2)*Sigma_1) + (mu_2 - mu_1)'*inv(Sigma_2)*(mu_2 - mu_1) - k + "
     "log(det(Sigma_2)/det(Sigma_1)))", "k: scalar"),
    (r"\frac12\left(\mathrm{tr}\left(\boldsymbol\Sigma_1^{-1}\boldsymbol\Sigma_0\right) + "
     r"(\boldsymbol\mu_1 - \boldsymbol\mu_0)^\top \boldsymbol\Sigma_1^{-1}(\boldsymbol\mu_1-"
     r"\boldsymbol\mu_0) - d + \log\frac{|\boldsymbol\Sigma_1|}{|\boldsymbol\Sigma_0|}\right)",
     "1/2*(tr(inv(Sigma_1)*Sigma_0) + (mu_1 - mu_0)'*inv(Sigma_1)*(mu_1 - mu_0) - d + "
     "log(det(Sigma_1)/det(Sigma_0)))", None),
    # PCA
    (r"\operatorname{tr}(W^\top S W)", "tr(W'*S*W)", None),
    (r"\mathrm{Tr}\left(\mathbf{U}^T\mathbf{X}\mathbf{X}^T\mathbf{U}\right)", "tr(U'*X*X'*U)",
     None),
    (r"\|X - XWW^\top\|_F^2", "norm2(X - X*W*W')^2", None),
    (r"\text{tr}(W^{\top}\Sigma W) - \operatorname{tr}(\Lambda(W^\top W - I))",
     "tr(W'*Sigma*W) - tr(Lambda*(W'*W - eye))", None),
    # Gaussian mixtures: the M-step's Q-function
    (r"-\frac{1}{2}\sum(\mathbf{r})\log|\Sigma| - \frac{1}{2}\operatorname{tr}\left(\Sigma^{-1}"
     r"(Y - \mathbf{1}\boldsymbol\mu^\top)^\top\operatorname{diag}(\mathbf{r})(Y - \mathbf{1}"
     r"\boldsymbol\mu^\top)\right)",
     "-1/2*sum(r)*log(det(Sigma)) - 1/2*tr(inv(Sigma)*(Y - vector(1)*mu')'*diag(r)*"
     "(Y - vector(1)*mu'))", "mu: vector"),
    (r"n_k \log \pi_k - \frac{n_k}{2}\log\det\Sigma_k - \frac12 \operatorname{tr}(\Sigma_k^{-1}"
     r" S_k)", "n_k*log(pi_k) - n_k/2*log(det(Sigma_k)) - 1/2*tr(inv(Sigma_k)*S_k)",
     "n_k, pi_k: scalar"),
    # Mahalanobis distance
    (r"\sqrt{(\mathbf{x}-\boldsymbol{\mu})^\top \mathbf{S}^{-1}(\mathbf{x}-\boldsymbol{\mu})}",
     "sqrt((x - mu)'*inv(S)*(x - mu))", "mu: vector"),
    (r"(x - y)^T M (x - y)", "(x - y)'*M*(x - y)", None),
    (r"\left\| L^\top(\mathbf{x} - \mathbf{y}) \right\|_2", "norm2(L'*(x - y))", None),
    # softmax cross-entropy
    (r"-\mathbf{y}^\top W\mathbf{x} + \log \mathbf{1}^\top\exp(W\mathbf{x})",
     "-y'*W*x + log(vector(1)'*exp(W*x))", None),
    (r"\log\sum\exp(\mathbf{z}) - \mathbf{y}^\top\mathbf{z}", "log(sum(exp(z))) - y'*z", None),
    (r"-\mathbf{y}^\top\log\mathbf{p}", "-y'*log(p)", None),
    # the notations one by one
    (r"\mathbf{a}^\top X^{-1}\mathbf{b}", "a'*inv(X)*b", "a, b: vector"),
    (r"\det(X^{-1}) + \operatorname{tr}(X^2)", "det(inv(X)) + tr(X^2)", None),
    (r"\mathbf{x}^{T}A^{\top}\mathbf{x} \cdot c", "x'*A'*x*c", None),
    (r"A^{-T} + A^{-\top} + A^{\prime}", "inv(A)' + inv(A)' + A'", None),
    (r"e^{\mathbf{a}^\top\mathbf{x}}", "exp(a'*x)", "a: vector"),
    (r"\sqrt{\mathbf{x}^\top\mathbf{x}} \times 2", "sqrt(x'*x)*2", None),
    (r"\left[\mathbf{x} - \mathbf{y}\right]^\top \left[\mathbf{x}+\mathbf{y}\right]",
     "(x - y)'*(x + y)", None),
    (r"\mathbf{x}'A\mathbf{x}", "x'*A*x", None),
    (r"\mathbf{1}^\top (A \odot B)\mathbf{1}", "vector(1)'*(A.*B)*vector(1)", None),
    (r"\mathbf{x}^\top(\mathbb{I} + \mathbf{u}\mathbf{v}^\top)^{-1}\mathbf{x}",
     "x'*inv(eye + u*v')*x", None),
    (r"\|A\|_F^2 + \|\mathbf{x}\|_1 + \left\|\mathbf{x}\right\|",
     "norm2(A)^2 + norm1(x) + norm2(x)", None),
    (r"\tanh(W\mathbf{x} + \mathbf{b})^\top\mathbf{v}", "tanh(W*x + b)'*v", "b: vector"),
    (r"\frac{\mathbf{x}^\top A\mathbf{x}}{\mathbf{x}^\top\mathbf{x}}", "(x'*A*x)/(x'*x)", None),
    (r"|a| + |\Sigma| + \lvert b \rvert", "abs(a) + det(Sigma) + abs(b)", None),
    (r"\mathbf{x}^\top\!A\,\mathbf{x} + \quad b\;", "x'*A*x + b", None),
    (r"\Sigma_{2} + \Sigma_2 \cdot \mathbf{I}", "Sigma_2 + Sigma_2*eye", None),
    (r"\mathbf{x}_i^\top \boldsymbol\theta", "x_i'*theta", "theta: vector"),
    (r"\operatorname{tr}(\mathbf{\Sigma}) + \log\det\mathbf{\Sigma}",
     "tr(Sigma) + log(det(Sigma))", None),
    (r"\exp(-\beta\|\mathbf{x} - \mathbf{y}\|^2)", "exp(-beta*norm2(x - y)^2)", None),
    (r"-\log\det(X) + \operatorname{tr}(SX) + \lambda\|X\|_F",
     "-log(det(X)) + tr(S*X) + lambda*norm2(X)", "lambda: scalar"),
    (r"\sigma^2 I + K", "sigma^2*eye + K", "sigma: scalar"),
    (r"\frac1n \mathbf{1}^\top \mathbf{x}", "1/n*vector(1)'*x", "n: scalar"),
    (r"\mathbf{x}^\top \mathbf{y} / 2 + \mathbf{x}^\top \mathbf{y} \div 3", "x'*y/2 + x'*y/3",
     None),
    (r"\log 2\pi + \ln(\mathbf{x}^\top\mathbf{x})", "log(2*pi) + log(x'*x)", None),
    (r"(\mathbf{x} - \mu)^\top (\mathbf{x} - \mu).", "(x - mu)'*(x - mu)", "mu: vector"),
    # what matdiff itself prints: directions, Hadamard powers, where, \log\det(...) then more
    (r"2 \mathrm{d}x^{\top}\, A \mathrm{d}x + \mathrm{d}\mathbf{x}^\top \mathbf{x}",
     "2*dx'*A*dx + dx'*x", None),
    (r"\operatorname{tr}\left(\mathrm{d}S\, S^{-1}\right)", "tr(dS*inv(S))", None),
    (r"\operatorname{sum}\left(x \odot \mathrm{d}x^{\circ 2}\right) + \mathbf{y}^{\circ 3}"
     r"^\top \mathbf{1}", "sum(x .* dx.^2) + (y.^3)'*vector(1)", "x: vector"),
    (r"s^\top s \quad\text{where } s = \exp\left(A x\right), t = s", "exp(A*x)'*exp(A*x)",
     "x: vector"),
    (r"\log\det\left(G\right) b + \log\det\left(G\right)^{2} + \log{\det(G) b}",
     "log(det(G))*b + log(det(G))^2 + log(det(G)*b)", None),
    (r"\sin\left(a\right) b + \sin\cos(a)^{-1}", "sin(a)*b + 1/sin(cos(a))", None),
    (r"\operatorname{abs}\left(A\right) + \left\|\mathbf{x}\right\|_{2} I_{n}",
     "abs(A) + norm2(x)*eye(n)", "A: matrix(n, n)"),
    (r"2\,\mathbf{1}_{n} + \mathbf{1}_{n} \mathbf{1}_{m}^{\top} \mathbf{y}",
     "vector(2, n) + vector(1, n)*vector(1, m)'*y", "y: vector(m)"),
]


def test_there_are_plenty_of_formulas() -> None:
    assert len(FORMULAS) >= 40


@pytest.mark.parametrize("latex, text, declare", FORMULAS,
                         ids=[f"{i}:{case[0][:30]}" for i, case in enumerate(FORMULAS)])
def test_latex_means_what_the_text_means(latex: str, text: str, declare) -> None:
    assert_same_expression(latex, text, declare)


def test_a_declaration_overrides_typography() -> None:
    # N is a capital, so a matrix by typography; the count N is declared a scalar
    latex = r"-\frac{N}{2}\log|\Sigma| - \frac{1}{2}\operatorname{tr}(\Sigma^{-1}S)"
    assert_same_expression(latex, "-N/2*log(det(Sigma)) - 1/2*tr(inv(Sigma)*S)", "N: scalar",
                           latex_declare="N: scalar")
    _, variables = parse_typed(latex, None, "latex")
    assert len(variables["N"].shape) == 2


# --- kinds ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("latex, kinds", [
    (r"(\mathbf{x} - \mu)^\top A (\mathbf{x} - \mu)", {"x": 1, "mu": 1, "A": 2}),
    (r"\mathbf{X}\boldsymbol\beta", {"X": 2, "beta": 1}),
    (r"\|y - Xw\|^2 + \lambda\|w\|^2", {"y": 1, "X": 2, "w": 1, "lambda": 0}),
    # theta^2 rules out the default vector: the simplest kind left, a scalar; alpha follows
    (r"\alpha + \theta^2", {"alpha": 0, "theta": 0}),
    (r"\theta^\top \mathbf{x}", {"theta": 1, "x": 1}),  # the default letter: a vector
    (r"\exp(t) \mathbf{x}", {"t": 0, "x": 1}),          # t x with x a vector: t * x typed
    (r"a \mathbf{x}", {"a": 0, "x": 1}),
    (r"\sigma^2 I", {"sigma": 0}),                      # not the default vector: the simplest
    (r"\operatorname{tr}(M)", {"M": 2}),
])
def test_kinds_from_typography_and_usage(latex: str, kinds: dict) -> None:
    _, variables = parse_typed(latex, None, "latex")
    assert {name: len(decl.shape) for name, decl in variables.items()} == kinds


def test_every_assumption_shows_in_the_declared_line(capsys) -> None:
    from matdiff.cli import main

    code = main(["derive", r"\|\mathbf{y} - X\mathbf{w}\|^2 + \lambda\|\mathbf{w}\|^2",
                 "--wrt", "w", "--latex"])
    out = capsys.readouterr().out
    assert code == 0
    assert "declared: y: vector(n); X: matrix(n,m); w: vector(m); lambda: scalar" in out
    declared = next(line for line in out.splitlines() if "declared:" in line).split(": ", 1)[1]
    again = matdiff.derive(r"\|\mathbf{y} - X\mathbf{w}\|^2 + \lambda\|\mathbf{w}\|^2", "w",
                           declare=declared)
    assert again.declarations == declared and again.check() < 1e-8


def test_identity_unless_declared() -> None:
    eye = matdiff.parse("A + eye", syntax="text")
    assert matdiff.parse(r"A + I", syntax="latex") is eye
    assert matdiff.parse(r"A + I_n", syntax="latex") is eye
    assert matdiff.parse(r"A + \mathbf{I}") is eye
    assert matdiff.parse(r"A + \mathbb{I}") is eye
    assert matdiff.parse(r"A + I", "I: matrix", syntax="latex") is matdiff.parse("A + I")


def test_latex_is_detected_or_forced() -> None:
    assert matdiff.parse(r"x^\top x") is matdiff.parse("x'*x")
    assert matdiff.parse("|A|") is matdiff.parse("det(A)")
    assert matdiff.parse("x' A x", syntax="latex") is matdiff.parse("x'*A*x")
    with pytest.raises(MatdiffError, match="unexpected"):
        matdiff.parse(r"x^\top x", syntax="text")
    with pytest.raises(MatdiffError, match="unknown syntax"):
        matdiff.parse("x", syntax="tex")


def test_cli_latex_flag_and_check(capsys) -> None:
    from matdiff.cli import main

    code = main(["check", r"\mathbf{x}^\top A \mathbf{x}", "--wrt", "x"])
    out = capsys.readouterr().out
    assert code == 0 and "df/dx = (A + A')*x" in out and ": ok" in out
    code = main(["derive", "x' A x", "--wrt", "x", "--latex"])
    assert code == 0 and "(A + A')*x" in capsys.readouterr().out


def test_derivatives_of_latex_input_check_numerically() -> None:
    for latex, wrt in [(r"\sum \log\left(1 + \exp(-\mathbf{y} \odot X\mathbf{w})\right)", "w"),
                       (r"\log \det(\boldsymbol\Lambda) - \operatorname{tr}(S\boldsymbol\Lambda)",
                        "Lambda"),
                       (r"\|X - XWW^\top\|_F^2", "W"),
                       (r"\log\sum\exp(\mathbf{z}) - \mathbf{y}^\top\mathbf{z}", "z")]:
        assert matdiff.derive(latex, wrt).check() < 1e-7, latex


# --- errors --------------------------------------------------------------------------------------

ERRORS = [
    (r"\frac{1}{2", 9, "'{' is never closed"),
    (r"\left( x + y", 6, "'(' is never closed"),
    (r"x + y \right)", 13, "unexpected ')'"),
    (r"x^", 3, "ends too early"),
    (r"\sum_{i=1}^n x_i", 1, r"\sum with an index"),
    (r"\sum^n x", 1, r"\sum with an index"),
    (r"\foo x", 1, r"unknown LaTeX command \foo"),
    (r"\prod x", 1, r"products \prod are not supported"),
    (r"x^23", 3, "write the exponent 23 in braces"),
    (r"x_12", 3, "write the subscript 12 in braces"),
    (r"x_{i,j}", 5, "',' cannot be part of a subscript"),
    (r"f(x) = x^\top x", 6, "paste only the right-hand side"),
    (r"\operatorname{foo}(x)", 1, r"unknown function \operatorname{foo}"),
    (r"\|X\|_2", 1, "the spectral norm of a matrix is not supported"),
    (r"\|X\|", 1, r"for a matrix write \|X\|_F"),
    (r"\|\mathbf{x}\|_\infty", 16, "infinity is not supported"),
    (r"|\mathbf{x}|", 1, r"for the length of a vector write \|x\|"),
    (r"\mathbf{x}\mathbf{y}", 11, "cannot multiply x (vector of size n) and y"),
    (r"\frac{\mathbf{x}}{\mathbf{y}}", 1, "cannot divide x"),
    (r"A^{-1/2}", 2, "a matrix power needs a whole number"),
    (r"\det\mathbf{x}", 1, "det needs a square matrix"),
    (r"\log_2 x", 5, "a subscript on log is not supported"),
    (r"\sin^2 x", 5, "a power of the function sin"),
    (r"x^-1", 3, "put a negative exponent in braces"),
    (r"\sqrt[3]{x}", 6, r"only square roots"),
    (r"\mathbb{R} x", 1, "is not a quantity"),
    (r"x \top", 3, r"\top transposes as a superscript"),
    (r"\left< x \right>", 6, r"\left needs a delimiter"),
    (r"a & b", 3, "alignment"),
    (r"\mathbf{x}^\top\mathbf{x} \\ + 1", 27, "without line breaks"),
    (r"\log x \exp(y)", 6, "cannot tell what x, y are"),
    (r"(\mathbf{x}-\boldsymbol\mu)^T\Sigma^{-1}(\mathbf{x}-\boldsymbol\mu", 41, "never closed"),
    (r"\alpha + \theta", 1, "cannot tell what alpha, theta are"),
    (r"\mathit{inv}(x)", 1, "inv is a reserved name"),
    (r"\Sigma_{1.5}", 9, "'1.5' cannot be part of a subscript"),
    (r"\,", None, "empty expression"),
    (r"\mathrm{d} + x", 1, r"\mathrm{d} (a differential) must be followed by a variable"),
    (r"x^{\cdot 2}", 4, "unexpected '*' in an exponent"),
    (r"x^\top x \quad\text{where } 2 = x", 29, "only a name can be bound"),
]


def test_there_are_plenty_of_error_cases() -> None:
    assert len(ERRORS) >= 25


@pytest.mark.parametrize("latex, column, fragment", ERRORS,
                         ids=[f"{i}:{case[0][:20]}" for i, case in enumerate(ERRORS)])
def test_bad_latex_is_one_clear_error_with_its_column(latex: str, column, fragment: str) -> None:
    with pytest.raises(MatdiffError) as caught:
        parse_typed(latex, None, "latex")
    error = caught.value
    assert fragment in str(error)
    assert "\n" not in str(error)
    assert error.column == column
    assert error.source == latex


def test_cli_reports_latex_errors_with_a_caret(capsys) -> None:
    from matdiff.cli import main

    code = main(["derive", r"\sum_{i=1}^n x_i", "--wrt", "x"])
    err = capsys.readouterr().err
    assert code == 2 and r"\sum with an index" in err and "Traceback" not in err
    assert err.splitlines()[-1].strip() == "^"


def test_evaluate_reads_latex() -> None:
    rng = np.random.default_rng(2)
    x, a = rng.standard_normal(3), rng.standard_normal((3, 3))
    got = matdiff.evaluate(r"\mathbf{x}^\top A \mathbf{x} + \|\mathbf{x}\|^2", x=x, A=a)
    assert np.isclose(got, x @ a @ x + x @ x)
    forced = matdiff.evaluate("x' A x", syntax="latex", x=x, A=a)
    assert np.isclose(forced, x @ a @ x)
