"""Benchmark matdiff.derive against SymPy.

Run from the repository root:  python benchmarks/bench_derive.py

Cases
  (a) the Gaussian density w.r.t. its symmetric covariance S (target: median < 50 ms);
  (b) a generated scalar expression of about 1,000 AST nodes w.r.t. the vector x (target: < 1 s).
Each is timed (parse, differentiate, simplify, and r.text) as the first call in the process, as the
median over runs with fresh variable names (the figure judged against the target: matdiff interns
and memoises nodes, so repeating the identical text is cheaper), and as the repeated-text median.
Baselines (one run each, in a child process with a time limit)
  - SymPy matrix expressions (MatrixSymbol, .diff), where SymPy accepts the expression;
  - SymPy on explicit 3x3 component matrices (symbols S_ij), slower but correct.
Every answer is checked numerically (against the known closed form for (a), against central
finite differences for (b)).  The exit status is 1 only if a matdiff answer is wrong or missing.
"""

from __future__ import annotations

import multiprocessing
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import matdiff  # noqa: E402

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
GAUSSIAN_NAMES = ["S", "x", "m", "k"]
GAUSSIAN_TARGET_S = 0.050
GAUSSIAN_RUNS = 20
LARGE_TARGET_S = 1.0
LARGE_RUNS = 5
LARGE_MIN_NODES = 1000
SIZE = 3  # k for (a), n for (b)
BASELINE_TIME_LIMIT_S = 40.0
RELATIVE_TOLERANCE = 1e-6


@dataclass
class Row:
    case: str
    matdiff_s: float | None
    baseline: str
    baseline_s: float | None
    target_s: float | None
    note: str


# ------------------------------------------------------------------------------------------------
# (a) The Gaussian density.


def gaussian_point(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal((SIZE, SIZE))
    return {
        "S": factor @ factor.T + np.eye(SIZE),
        "x": rng.standard_normal(SIZE),
        "m": rng.standard_normal(SIZE),
    }


def gaussian_gradient_known(point: dict[str, np.ndarray]) -> np.ndarray:
    """df/dS = 1/2 f (inv(S) d d' inv(S) - inv(S)), d = x - m (already symmetric)."""
    covariance_inverse = np.linalg.inv(point["S"])
    difference = point["x"] - point["m"]
    density = ((2 * np.pi) ** (-SIZE / 2) * np.linalg.det(point["S"]) ** -0.5
               * np.exp(-0.5 * difference @ covariance_inverse @ difference))
    whitened = covariance_inverse @ difference
    return 0.5 * density * (np.outer(whitened, whitened) - covariance_inverse)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


def call_numpy(result, arguments: dict[str, object]) -> np.ndarray:
    return np.asarray(result.numpy()(**arguments), dtype=float)


@dataclass
class Timing:
    first_s: float  # the first call in this process (includes building the parser)
    fresh_s: float  # median over runs with fresh variable names (no memoised work to reuse)
    repeated_s: float  # median over runs of the identical text (matdiff interns and memoises)
    result: object  # the first call's result


def renamed(text: str, names: list[str], suffix: str) -> str:
    pattern = r"\b(" + "|".join(map(re.escape, names)) + r")\b"
    return re.sub(pattern, lambda match: match.group(0) + suffix, text)


def derive_seconds(expression: str, wrt: str, declare: str):
    start = time.perf_counter()
    result = matdiff.derive(expression, wrt, declare=declare)
    _ = result.text  # the answer in matrix notation is part of the work
    return time.perf_counter() - start, result


def time_derive(expression: str, wrt: str, declare: str, names: list[str], runs: int) -> Timing:
    first_s, result = derive_seconds(expression, wrt, declare)
    fresh = [derive_seconds(*(renamed(text, names, f"_{run}")
                              for text in (expression, wrt, declare)))[0]
             for run in range(runs)]
    repeated = [derive_seconds(expression, wrt, declare)[0] for _ in range(runs)]
    return Timing(first_s, statistics.median(fresh), statistics.median(repeated), result)


def sympy_gaussian_matrix_symbols() -> tuple[float, np.ndarray]:
    """SymPy's matrix-expression derivative, evaluated on explicit matrices at the point."""
    import sympy

    k = sympy.Symbol("k", integer=True, positive=True)
    covariance = sympy.MatrixSymbol("S", k, k)
    x, mean = sympy.MatrixSymbol("x", k, 1), sympy.MatrixSymbol("m", k, 1)
    difference = x - mean
    start = time.perf_counter()
    density = ((2 * sympy.pi) ** (-k / 2) * sympy.Determinant(covariance) ** sympy.Rational(-1, 2)
               * sympy.exp(-sympy.Rational(1, 2)
                           * sympy.Trace(difference.T * covariance.I * difference)))
    gradient = density.diff(covariance)
    elapsed = time.perf_counter() - start
    point = gaussian_point()
    explicit = {sympy.MatrixSymbol(name, *shape): sympy.ImmutableMatrix(point[name].reshape(shape))
                for name, shape in [("S", (SIZE, SIZE)), ("x", (SIZE, 1)), ("m", (SIZE, 1))]}
    value = gradient.subs(k, SIZE).subs(explicit).doit()
    value = np.array(sympy.Matrix(value).evalf(), dtype=float) if value.shape != (0, 0) else value
    return elapsed, np.broadcast_to(np.asarray(value, dtype=float), (SIZE, SIZE))


def sympy_gaussian_components() -> tuple[float, np.ndarray]:
    """SymPy on a 3x3 matrix of independent symbols S_ij; the answer is sym(G) = (G + G')/2."""
    import sympy

    covariance = sympy.Matrix(SIZE, SIZE, lambda i, j: sympy.Symbol(f"S_{i}{j}"))
    x = sympy.Matrix(sympy.symbols(f"x_0:{SIZE}"))
    mean = sympy.Matrix(sympy.symbols(f"m_0:{SIZE}"))
    start = time.perf_counter()
    difference = x - mean
    quadratic = (difference.T * covariance.inv() * difference)[0, 0]
    normalization = (2 * sympy.pi) ** sympy.Rational(-SIZE, 2)
    density = normalization * covariance.det() ** sympy.Rational(-1, 2) * sympy.exp(-quadratic / 2)
    gradient = sympy.Matrix(SIZE, SIZE, lambda i, j: density.diff(covariance[i, j]))
    elapsed = time.perf_counter() - start
    point = gaussian_point()
    substitution = {covariance[i, j]: point["S"][i, j] for i in range(SIZE) for j in range(SIZE)}
    substitution |= {x[i]: point["x"][i] for i in range(SIZE)}
    substitution |= {mean[i]: point["m"][i] for i in range(SIZE)}
    unstructured = np.array(gradient.evalf(subs=substitution), dtype=float)
    return elapsed, 0.5 * (unstructured + unstructured.T)


# ------------------------------------------------------------------------------------------------
# (b) A generated expression of about 1,000 nodes: a sum of varied scalar terms in x.


@dataclass(frozen=True)
class Expr:
    """A node of the benchmark expression: text, node count and two evaluators."""

    text: str
    kind: str  # "s" scalar, "v" column vector, "r" row vector, "m" matrix
    nodes: int
    numpy: Callable[[dict], object]
    sympy: Callable[[dict], object]
    form: str = "atom"  # "atom", "product" (a*b*c groups left to right), "elementwise", "sum"


def variable(name: str, kind: str) -> Expr:
    return Expr(name, kind, 1, lambda env: env[name], lambda env: env[name])


def number(value: float) -> Expr:
    return Expr(f"{value:g}", "s", 1, lambda env: value, lambda env: value)


def identity() -> Expr:
    return Expr("eye", "m", 1, lambda env: np.eye(SIZE), lambda env: env["sympy"].eye(SIZE))


def as_operand(expr: Expr, unparenthesized_forms: tuple[str, ...] = ("atom",)) -> str:
    return expr.text if expr.form in unparenthesized_forms else f"({expr.text})"


def transpose(expr: Expr) -> Expr:
    kind = {"v": "r", "r": "v", "m": "m"}[expr.kind]
    return Expr(f"{as_operand(expr)}'", kind, expr.nodes + 1,
                lambda env: np.transpose(expr.numpy(env)), lambda env: expr.sympy(env).T)


def unwrap_one_by_one(value):
    return value[0, 0] if hasattr(value, "shape") and value.shape == (1, 1) else value


PRODUCT_KINDS = {"ss": "s", "sv": "v", "vs": "v", "sm": "m", "ms": "m", "sr": "r", "rs": "r",
                 "rm": "r", "mv": "v", "rv": "s", "mm": "m", "vr": "m"}


def multiply(left: Expr, right: Expr) -> Expr:
    """Matrix product, dot/outer product or scaling."""
    kinds = left.kind + right.kind

    def numpy_value(env):
        a, b = left.numpy(env), right.numpy(env)
        if kinds == "vr":
            return np.outer(a, b)
        return a * b if "s" in kinds else a @ b

    def sympy_value(env):
        return unwrap_one_by_one(left.sympy(env) * right.sympy(env))

    return Expr(f"{as_operand(left, ('atom', 'product'))}*{as_operand(right)}",
                PRODUCT_KINDS[kinds], left.nodes + right.nodes + 1, numpy_value, sympy_value,
                form="product")


def add(left: Expr, right: Expr, operator: str = "+") -> Expr:
    sign = 1.0 if operator == "+" else -1.0
    return Expr(f"{left.text} {operator} {as_operand(right, ('atom', 'product'))}", left.kind,
                left.nodes + right.nodes + 1,
                lambda env: left.numpy(env) + sign * right.numpy(env),
                lambda env: left.sympy(env) + sign * right.sympy(env), form="sum")


def elementwise(left: Expr, right: Expr, operator: str) -> Expr:
    def numpy_value(env):
        a, b = left.numpy(env), right.numpy(env)
        return a * b if operator == ".*" else a / b

    def sympy_value(env):
        a, b = left.sympy(env), right.sympy(env)
        if operator == "./":
            b = b.applyfunc(lambda entry: 1 / entry)
        return a.multiply_elementwise(b)

    return Expr(f"{as_operand(left)} {operator} {as_operand(right)}", left.kind,
                left.nodes + right.nodes + 1, numpy_value, sympy_value, form="elementwise")


ELEMENTWISE_NUMPY = {"exp": np.exp, "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "log": np.log,
                     "sqrt": np.sqrt}


def call(name: str, argument: Expr) -> Expr:
    """A function call; elementwise functions keep the kind, the others give a scalar/matrix."""
    kind = argument.kind

    if name in ELEMENTWISE_NUMPY:
        def numpy_value(env):
            return ELEMENTWISE_NUMPY[name](argument.numpy(env))

        def sympy_value(env):
            function = getattr(env["sympy"], name)
            value = argument.sympy(env)
            return value.applyfunc(function) if hasattr(value, "applyfunc") else function(value)
    elif name == "inv":
        def numpy_value(env):
            return np.linalg.inv(argument.numpy(env))

        def sympy_value(env):
            return argument.sympy(env).inv()
    elif name == "diag":
        kind = "m"

        def numpy_value(env):
            return np.diag(argument.numpy(env))

        def sympy_value(env):
            return env["sympy"].diag(*argument.sympy(env))
    else:
        kind = "s"
        numpy_function, sympy_function = {
            "tr": (np.trace, lambda value, sympy: value.trace()),
            "sum": (np.sum, lambda value, sympy: sum(value)),
            "det": (np.linalg.det, lambda value, sympy: value.det()),
            "logdet": (lambda value: np.linalg.slogdet(value)[1],
                       lambda value, sympy: sympy.log(value.det())),
            "norm2": (np.linalg.norm, lambda value, sympy: sympy.sqrt((value.T * value)[0, 0])),
        }[name]

        def numpy_value(env):
            return numpy_function(argument.numpy(env))

        def sympy_value(env):
            return sympy_function(argument.sympy(env), env["sympy"])
    return Expr(f"{name}({argument.text})", kind, argument.nodes + 1, numpy_value, sympy_value)


def large_term(index: int) -> Expr:
    """The index-th term; constants differ per term so no two terms can be merged."""
    x, y = variable("x", "v"), variable("y", "v")
    first, second = [(variable("A", "m"), variable("B", "m")),
                     (variable("B", "m"), variable("A", "m"))][index % 2]
    weight = number(round(0.05 + 0.01 * index, 2))
    inner = number(round(0.02 + 0.003 * index, 3))
    template = index % 10
    if template == 0:  # c*exp(q*x'*A*B*x)
        body = call("exp", multiply(multiply(multiply(multiply(inner, transpose(x)), first),
                                             second), x))
    elif template == 1:  # c*sin(q*x'*A*y)
        body = call("sin", multiply(multiply(multiply(inner, transpose(x)), first), y))
    elif template == 2:  # c*sum(exp(q*A*x))
        body = call("sum", call("exp", multiply(multiply(inner, first), x)))
    elif template == 3:  # c*log(1 + q*x'*x)
        body = call("log", add(number(1), multiply(multiply(inner, transpose(x)), x)))
    elif template == 4:  # c*tanh(q*y'*B*x)*tr(A*B)
        body = multiply(call("tanh", multiply(multiply(multiply(inner, transpose(y)), second), x)),
                        call("tr", multiply(first, second)))
    elif template == 5:  # c*norm2(A*x + q*y)
        body = call("norm2", add(multiply(first, x), multiply(inner, y)))
    elif template == 6:  # c*x'*inv(B*B' + eye)*x*q
        gram = add(multiply(second, transpose(second)), identity())
        body = multiply(multiply(multiply(transpose(x), call("inv", gram)), x), inner)
    elif template == 7:  # c*sqrt(1 + q*(x .* y)'*(x .* y))
        product = elementwise(x, y, ".*")
        body = call("sqrt", add(number(1), multiply(multiply(inner, transpose(product)),
                                                     product)))
    elif template == 8:  # c*cos(q*sum(x ./ exp(y)))
        body = call("cos", multiply(inner, call("sum", elementwise(x, call("exp", y), "./"))))
    else:  # c*logdet(B*B' + q*x*x' + eye) + c*x'*diag(y)*A*x
        gram = add(add(multiply(second, transpose(second)),
                       multiply(multiply(inner, x), transpose(x))), identity())
        quadratic = multiply(multiply(multiply(transpose(x), call("diag", y)), first), x)
        body = add(call("logdet", gram), quadratic)
    return multiply(weight, body)


def large_expression() -> Expr:
    total = large_term(0)
    index = 1
    while total.nodes < LARGE_MIN_NODES:
        total = add(total, large_term(index), "+" if index % 3 else "-")
        index += 1
    return total


LARGE_DECLARE = "x, y: vector(n); A, B: matrix(n,n)"
LARGE_NAMES = ["x", "y", "A", "B", "n"]


def large_point(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": 0.5 * rng.standard_normal(SIZE), "y": 0.5 * rng.standard_normal(SIZE),
            "A": 0.5 * rng.standard_normal((SIZE, SIZE)),
            "B": 0.5 * rng.standard_normal((SIZE, SIZE))}


def finite_difference_gradient(function: Callable[[np.ndarray], float], x: np.ndarray,
                               step: float = 1e-3) -> np.ndarray:
    gradient = np.zeros_like(x)
    for index in range(x.size):
        unit = np.zeros_like(x)
        unit[index] = step
        gradient[index] = (function(x - 2 * unit) - 8 * function(x - unit)
                           + 8 * function(x + unit) - function(x + 2 * unit)) / (12 * step)
    return gradient


def large_gradient_by_differences() -> np.ndarray:
    expression, point = large_expression(), large_point()
    return finite_difference_gradient(lambda x: float(expression.numpy({**point, "x": x})),
                                      point["x"])


def sympy_large_components() -> tuple[float, np.ndarray]:
    import sympy

    point = large_point()
    environment = {
        "sympy": sympy,
        "x": sympy.Matrix(sympy.symbols(f"x_0:{SIZE}")),
        "y": sympy.Matrix(sympy.symbols(f"y_0:{SIZE}")),
        "A": sympy.Matrix(SIZE, SIZE, lambda i, j: sympy.Symbol(f"A_{i}{j}")),
        "B": sympy.Matrix(SIZE, SIZE, lambda i, j: sympy.Symbol(f"B_{i}{j}")),
    }
    expression = large_expression()
    start = time.perf_counter()
    value = expression.sympy(environment)
    gradient = [value.diff(symbol) for symbol in environment["x"]]
    elapsed = time.perf_counter() - start
    substitution = {}
    for name in ("x", "y", "A", "B"):
        symbols, values = environment[name], np.atleast_1d(point[name]).ravel()
        substitution |= {symbol: float(v) for symbol, v in zip(symbols, values, strict=True)}
    return elapsed, np.array([float(entry.evalf(subs=substitution)) for entry in gradient])


# ------------------------------------------------------------------------------------------------
# Running baselines in a child process with a time limit.


def _child(function_name: str, queue) -> None:
    try:
        queue.put(("ok", globals()[function_name]()))
    except Exception as error:  # report SymPy's failure instead of crashing the benchmark
        queue.put(("error", f"{type(error).__name__}: {error}"))


def run_baseline(function_name: str) -> tuple[str, float | None, np.ndarray | None]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child, args=(function_name, queue))
    process.start()
    try:
        status, payload = queue.get(timeout=BASELINE_TIME_LIMIT_S)
    except Exception:
        process.terminate()
        process.join()
        return f"gave up after {BASELINE_TIME_LIMIT_S:.0f} s", None, None
    process.join()
    if status == "error":
        return f"error: {payload[:80]}", None, None
    elapsed, value = payload
    return "", elapsed, value


def judge_baseline(name: str, expected: np.ndarray) -> tuple[float | None, str]:
    note, elapsed, value = run_baseline(name)
    if value is None:
        return None, note
    error = relative_error(value, expected)
    verdict = "right" if error < RELATIVE_TOLERANCE else f"WRONG (rel. error {error:.2g})"
    if np.all(np.asarray(value) == 0):
        verdict = "WRONG (returns 0)"
    return elapsed, verdict


# ------------------------------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(rows: list[Row]) -> None:
    header = ("case", "matdiff", "baseline", "baseline time", "ratio", "target", "note")
    lines = [header]
    for row in rows:
        ratio = (f"{row.baseline_s / row.matdiff_s:.1f}x" if row.baseline_s and row.matdiff_s
                 else "-")
        if row.target_s is None:
            target = "-"
        elif row.matdiff_s is None:
            target = "FAIL"
        else:
            verdict = "pass" if row.matdiff_s < row.target_s else "FAIL"
            target = f"{verdict} (<{format_seconds(row.target_s)})"
        lines.append((row.case, format_seconds(row.matdiff_s), row.baseline,
                      format_seconds(row.baseline_s), ratio, target, row.note))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def timing_rows(label: str, timing: Timing | None, runs: int, target_s: float,
                note: str) -> list[Row]:
    """matdiff's rows; the target is judged on the fresh-names median."""
    if timing is None:
        return [Row(label, None, "", None, target_s, note)]
    return [
        Row(f"{label}, first call", timing.first_s, "", None, None, "cold process"),
        Row(f"{label}, median of {runs}", timing.fresh_s, "", None, target_s,
            f"{note}; fresh variable names each run"),
        Row(f"{label}, median of {runs}", timing.repeated_s, "", None, None,
            "same text repeated (matdiff memoises interned nodes)"),
    ]


def main() -> int:
    rows: list[Row] = []
    matdiff_wrong = False

    # (a)
    point = gaussian_point()
    expected = gaussian_gradient_known(point)
    try:
        timing = time_derive(GAUSSIAN, "S", GAUSSIAN_DECLARE, GAUSSIAN_NAMES, GAUSSIAN_RUNS)
        value = call_numpy(timing.result, {**point, "k": float(SIZE)})
        error = relative_error(value, expected)
        gaussian_note = ("right" if error < RELATIVE_TOLERANCE
                         else f"WRONG (rel. error {error:.2g})")
        matdiff_wrong |= error >= RELATIVE_TOLERANCE
        print(f"(a) d/dS {GAUSSIAN}\n    = {timing.result.text}")
    except Exception as error:
        timing = None
        gaussian_note = f"ERROR {type(error).__name__}: {error}"
        matdiff_wrong = True
        print(f"(a) matdiff failed: {gaussian_note}")
    symbols_s, symbols_note = judge_baseline("sympy_gaussian_matrix_symbols", expected)
    components_s, components_note = judge_baseline("sympy_gaussian_components", expected)
    rows += timing_rows("(a) Gaussian d/dS", timing, GAUSSIAN_RUNS, GAUSSIAN_TARGET_S,
                        f"matdiff {gaussian_note}")
    matdiff_s = timing.fresh_s if timing else None
    rows.append(Row("(a) Gaussian d/dS", matdiff_s, "sympy MatrixSymbol", symbols_s, None,
                    f"sympy {symbols_note}"))
    rows.append(Row("(a) Gaussian d/dS", matdiff_s, "sympy 3x3 components", components_s, None,
                    f"sympy {components_note}"))

    # (b)
    expression = large_expression()
    expected = large_gradient_by_differences()
    print(f"\n(b) generated expression: {expression.nodes} AST nodes, {len(expression.text)} "
          f"characters, starts {expression.text[:90]}...")
    try:
        timing = time_derive(expression.text, "x", LARGE_DECLARE, LARGE_NAMES, LARGE_RUNS)
        value = call_numpy(timing.result, large_point())
        error = relative_error(value, expected)
        large_note = "right" if error < 1e-5 else f"WRONG (rel. error {error:.2g})"
        matdiff_wrong |= error >= 1e-5
        print(f"    answer has {len(timing.result.text)} characters")
    except Exception as error:
        timing = None
        large_note = f"ERROR {type(error).__name__}: {error}"
        matdiff_wrong = True
        print(f"    matdiff failed: {large_note}")
    components_s, components_note = judge_baseline("sympy_large_components", expected)
    label = f"(b) {expression.nodes} nodes d/dx"
    rows += timing_rows(label, timing, LARGE_RUNS, LARGE_TARGET_S, f"matdiff {large_note}")
    matdiff_s = timing.fresh_s if timing else None
    rows.append(Row(label, matdiff_s, "sympy 3x3 components", components_s, None,
                    f"sympy {components_note}"))
    rows.append(Row(label, None, "sympy MatrixSymbol", None, None,
                    "not run: SymPy matrix expressions have no elementwise exp/sin/... of vectors"))

    print()
    print_table(rows)
    print("\nratio = baseline time / matdiff fresh-names median; "
          "SymPy answers checked at the same point.")
    return 1 if matdiff_wrong else 0


if __name__ == "__main__":
    sys.exit(main())
