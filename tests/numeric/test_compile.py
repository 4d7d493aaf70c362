"""Compiled derivatives (numeric/plan, emit, compile): every worked example against its
independently written NumPy answer, the identities the planner applies checked numerically,
the kernels it picks read off the emitted source, the source run standalone, the backends
against each other."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the worked examples

from cases import CASES  # noqa: E402
from test_cases import derived, draw, is_symmetric_wrt, relative_error  # noqa: E402

import matdiff  # noqa: E402
from matdiff import MatdiffError  # noqa: E402

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
LOGISTIC = "sum(log(vector(1) + exp(-y .* (X*w))))"
FACTORISATION = "norm2(T - U*V')^2"
NLL = "N/2*logdet(S) + 1/2*tr(inv(S)*C)"
NLL_DECLARE = "S: symmetric posdef matrix(n,n); C: symmetric matrix(n,n); N: scalar"


def gaussian_point(k: int, rng, scale: float = 1.0):
    f = rng.standard_normal((k, k))
    return {"S": scale * (f @ f.T / k + np.eye(k)), "x": rng.standard_normal(k),
            "m": rng.standard_normal(k), "k": float(k)}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_compiled_matches_the_worked_examples(case):
    r = derived(case)
    fn = r.compile()
    rng = np.random.default_rng(sum(map(ord, case["id"])) + 1)
    want = "expected_sym" if is_symmetric_wrt(case) and case["order"] == 1 else "expected"
    for _ in range(2):
        values = draw(case, rng)
        assert relative_error(fn(**values), case[want](values)) < 1e-8, fn.source()


def test_several_derivatives_and_the_value_share_one_function():
    rng = np.random.default_rng(0)
    point = gaussian_point(6, rng)
    both = matdiff.compile(GAUSSIAN, wrt=["x", "m", "S"], declare=GAUSSIAN_DECLARE, value=True)
    value, *grads = both(**point)
    d = point["x"] - point["m"]
    inv = np.linalg.inv(point["S"])
    f = (2 * np.pi) ** -3 * np.linalg.det(point["S"]) ** -0.5 * np.exp(-0.5 * d @ inv @ d)
    w = inv @ d
    expected = [-f * w, f * w, 0.5 * f * (np.outer(w, w) - inv)]
    assert abs(value - f) < 1e-12 * f
    for got, want in zip(grads, expected):
        assert relative_error(got, want) < 1e-12
    # the Cholesky factor and inv(S)*(x - m) are computed once for all four outputs
    source = both.source()
    assert source.count("cholesky(") == 1
    assert source.count("@ t") + source.count("solve(") <= 3, source


def test_density_at_n_1000_is_evaluated_in_the_log_domain():
    """det(S) underflows at n = 1000; det(S)^(-1/2)*exp(u) = exp(-logdet(S)/2 + u) does not."""
    rng = np.random.default_rng(1)
    k = 1000
    point = gaussian_point(k, rng)
    # scaled so that (2*pi)^(-k/2)*det(S)^(-1/2) is about 1: a density that is representable
    point["S"] /= 2 * np.pi * np.exp(np.linalg.slogdet(point["S"])[1] / k)
    point["x"] = point["m"] + 0.01 * rng.standard_normal(k)
    assert np.linalg.det(point["S"]) == 0.0          # the naive form gives 0^(-1/2)*0 = nan
    fn = matdiff.compile(GAUSSIAN, wrt=["x", "S"], declare=GAUSSIAN_DECLARE, value=True)
    value, gx, gs = fn(**point)
    d = point["x"] - point["m"]
    sign, logdet = np.linalg.slogdet(point["S"])
    w = np.linalg.solve(point["S"], d)
    f = np.exp(-k / 2 * np.log(2 * np.pi) - logdet / 2 - d @ w / 2)
    assert np.isfinite(f) and f > 0
    assert abs(value - f) < 1e-10 * f
    assert relative_error(gx, -f * w) < 1e-10
    assert relative_error(gs, 0.5 * f * (np.outer(w, w) - np.linalg.inv(point["S"]))) < 1e-10


def test_hessian_vector_product_is_the_directional_derivative_of_the_gradient():
    rng = np.random.default_rng(2)
    point = {"T": rng.standard_normal((7, 5)), "U": rng.standard_normal((7, 3)),
             "V": rng.standard_normal((5, 3))}
    direction = rng.standard_normal((7, 3))
    hvp = matdiff.compile(FACTORISATION, wrt="U", order=2, direction="W")
    gradient = matdiff.derive(FACTORISATION, "U").compile()
    h = 1e-5
    plus = gradient(**{**point, "U": point["U"] + h * direction})
    minus = gradient(**{**point, "U": point["U"] - h * direction})
    assert relative_error(hvp(**point, W=direction), (plus - minus) / (2 * h)) < 1e-8
    assert "eye" not in hvp.source()


def test_hessian_vector_product_on_symmetric_matrices():
    rng = np.random.default_rng(3)
    n = 5
    point = {"S": gaussian_point(n, rng)["S"], "C": np.cov(rng.standard_normal((n, 20))),
             "N": 20.0}
    v = rng.standard_normal((n, n))
    v = v + v.T
    hvp = matdiff.compile(NLL, wrt="S", order=2, direction="V", declare=NLL_DECLARE)
    gradient = matdiff.derive(NLL, "S", declare=NLL_DECLARE).compile()
    h = 1e-5
    numeric = (gradient(**{**point, "S": point["S"] + h * v})
               - gradient(**{**point, "S": point["S"] - h * v})) / (2 * h)
    assert relative_error(hvp(**point, V=v), numeric) < 1e-7


INTERPRETED = [
    (FACTORISATION, "U", 1, None), (FACTORISATION, "U", 2, None),
    (LOGISTIC, "w", 1, None), (LOGISTIC, "w", 2, None),
    ("x'*A*x", "x", 2, None), (NLL, "S", 1, NLL_DECLARE), (NLL, "S", 2, NLL_DECLARE),
    ("tr(A*inv(X)*B)", "X", 1, None), ("x'*inv(A)*y", "x", 1, None),
    ("sum(exp(X))*eye + X", "X", 1, None), ("logdet(X)", "X", 2, None),
    ("tr(A^3)", "A", 1, "A: matrix(n,n)"), ("x'*A^5*x", "A", 1, "A: matrix(n,n)"),  # mpow
    # two log-domain scalar groups built from one temporary node (interning is weak)
    (GAUSSIAN, "S", 1, GAUSSIAN_DECLARE), (GAUSSIAN, "x", 1, GAUSSIAN_DECLARE),
    # sums accumulated in place next to a temporary read twice; Gram products, symmetric
    ("A*B + (A*B)' + A*B*C", "B", 1, "A, B, C: matrix(n,n)"),
    ("tr(X'*X*B) + tr(B*X'*X*X'*X)", "X", 2, "X, B: matrix(n,n)"),
]


@pytest.mark.parametrize("expr, wrt, order, declare", INTERPRETED)
def test_compiled_agrees_with_the_interpreter(expr, wrt, order, declare):
    """Each planner identity (identities renamed or embedded, sums distributed, scalars moved,
    solves, Cholesky) against the step-by-step evaluation r.numpy(), itself checked against
    finite differences."""
    r = matdiff.derive(expr, wrt, order=order, declare=declare)
    assert r.check() < 1e-6
    rng = np.random.default_rng(4)
    fn = r.compile()
    for n in (3, 6):
        values = _point(r, rng, n)
        if "k" in values:
            values["k"] = float(n)
        assert relative_error(fn(**values), r.numpy()(**values)) < 1e-12, fn.source()


@pytest.mark.parametrize("expr, wrt, order, declare", INTERPRETED)
def test_the_fast_call_path_agrees_with_the_checked_one(expr, wrt, order, declare):
    """A second call with float64 arrays of the same shapes skips conversion and checks (the
    trusted twin of the function): new values, the same answers as r.numpy(); a wrong shape,
    a float32 or list argument after it still goes through the checked path."""
    r = matdiff.derive(expr, wrt, order=order, declare=declare)
    rng = np.random.default_rng(6)
    fn = r.compile()
    fn(**_point(r, rng, 4))
    assert fn._trusted, "the shapes were not admitted to the fast path"
    values = _point(r, rng, 4)
    expected = r.numpy()(**values)
    assert relative_error(fn(**values), expected) < 1e-12, fn.source()
    converted = {k: v.astype(np.float32).astype(np.float64).tolist() if np.ndim(v) else v
                 for k, v in values.items()}
    rounded = {k: np.asarray(v) if np.ndim(v) else v for k, v in converted.items()}
    assert relative_error(fn(**converted), r.numpy()(**rounded)) < 1e-12
    name, array = next((k, v) for k, v in values.items() if np.ndim(v) and k in fn.parameters)
    with pytest.raises(MatdiffError, match=f"{name} should"):
        fn(**{**values, name: np.zeros(array.shape + (2,))})


def test_a_fast_call_that_fails_says_why_as_the_checked_one_does():
    fn = matdiff.derive(GAUSSIAN, "x", declare=GAUSSIAN_DECLARE).compile()
    rng = np.random.default_rng(7)
    fn(**gaussian_point(3, rng))
    with pytest.raises(MatdiffError, match="positive definite"):
        fn(S=-np.eye(3), x=np.zeros(3), m=np.zeros(3), k=3.0)


def _point(r, rng, n):
    values = {}
    for name, decl in r.variables.items():
        shape = tuple(n if isinstance(d, str) else d for d in decl.shape)
        a = rng.standard_normal(shape) if shape else float(rng.uniform(1, 2))
        if "posdef" in decl.props:
            a = a @ a.T / n + np.eye(n)
        elif "symmetric" in decl.props:
            a = (a + a.T) / 2
        elif len(shape) == 2 and shape[0] == shape[1]:
            a = a + n * np.eye(n)
        values[name] = a
    return values


def test_kernels_read_off_the_source():
    # a two-factor product is a BLAS matrix product, not einsum
    source = matdiff.derive(FACTORISATION, "U").compile().source()
    assert "@" in source and "einsum" not in source
    # X'*diag(u)*X - X'*diag(v)*X is one product of X'*diag(u - v) with X
    source = matdiff.derive(LOGISTIC, "w", order=2).compile().source()
    assert source.count("@") == 2, source      # X*w, and the one Hessian product
    # the identity in the factorisation Hessian is never materialised; the 2 scales V'*V
    source = matdiff.derive(FACTORISATION, "U", order=2).compile().source({"n": 50, "m": 40,
                                                                            "p": 3})
    assert "eye" not in source and "2.0 * t1" in source, source
    # V'*V is symmetric: the Hessian-vector product W*(2*V'*V) reads it untransposed
    source = matdiff.compile(FACTORISATION, wrt="U", order=2, direction="W").source(
        {"n": 300, "m": 300, "p": 4})
    assert "t1 = V.T @ V" in source and "W @ t2\n" in source, source
    # the NLL Hessian's two outer products accumulate into one array, laid out in C order
    nll = matdiff.derive(NLL, "S", order=2, declare=NLL_DECLARE)
    source = nll.compile().source({"n": 30})
    assert "+= t" in source and "order='C'" in source, source
    point = _point(nll, np.random.default_rng(8), 5)
    assert nll.compile()(**point).flags.c_contiguous
    # posdef: the x-gradient of the density solves with the Cholesky factor, no inverse
    source = matdiff.derive(GAUSSIAN, "x", declare=GAUSSIAN_DECLARE).compile().source()
    source = re.sub(r'"""[^"]*"""', "", source)      # the code, not the formula
    assert "cholesky(" in source and "inv(" not in source and "det(" not in source, source


def test_the_seeds_gradients_run_standalone(tmp_path):
    """The emitted source, pasted into a file, runs in a fresh interpreter and agrees with
    r.numpy(); its check_gradient helper passes."""
    rng = np.random.default_rng(5)
    point = gaussian_point(4, rng)
    np.savez(tmp_path / "point.npz", **point)
    expected = {}
    for wrt in ("S", "m", "x"):
        r = matdiff.derive(GAUSSIAN, wrt, declare=GAUSSIAN_DECLARE)
        (tmp_path / f"grad_{wrt}.py").write_text(r.source())
        expected[wrt] = r.numpy()(**point)
    script = textwrap.dedent("""
        import importlib, json, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        point = dict(np.load(sys.argv[1] + "/point.npz"))
        point["k"] = float(point["k"])
        out = {}
        for wrt in ("S", "m", "x"):
            module = importlib.import_module("grad_" + wrt)
            out[wrt] = [getattr(module, "df_d" + wrt)(**point).tolist(), module.check_gradient()]
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import json
    out = json.loads(done.stdout)
    for wrt, (value, check) in out.items():
        assert relative_error(np.array(value), expected[wrt]) < 1e-12
        assert check < 1e-6


def test_bad_input_is_a_matdiff_error():
    fn = matdiff.derive(FACTORISATION, "U").compile()
    t, u, v = np.zeros((4, 3)), np.zeros((4, 2)), np.zeros((3, 2))
    with pytest.raises(MatdiffError, match="V should be"):
        fn(T=t, U=u, V=np.zeros((3, 5)))
    with pytest.raises(MatdiffError, match="no value given for variable"):
        fn(T=t, U=u)
    with pytest.raises(MatdiffError, match="unknown backend"):
        matdiff.derive(FACTORISATION, "U").compile("tensorflow")
    with pytest.raises(MatdiffError):   # V is a variable of another shape than U
        matdiff.compile(FACTORISATION, wrt="U", order=2, direction="V")
    not_posdef = matdiff.derive(GAUSSIAN, "x", declare=GAUSSIAN_DECLARE).compile()
    with pytest.raises(MatdiffError, match="positive definite"):
        not_posdef(S=-np.eye(3), x=np.zeros(3), m=np.zeros(3), k=3.0)
    assert np.allclose(fn(T=t, U=u, V=v), 0)


BACKEND_CASES = [(FACTORISATION, "U", 1, None), (FACTORISATION, "U", 2, None),
                 (LOGISTIC, "w", 2, None), (NLL, "S", 1, NLL_DECLARE),
                 (NLL, "S", 2, NLL_DECLARE), ("tr(A*inv(X)*B)", "X", 1, None),
                 (GAUSSIAN, "S", 1, GAUSSIAN_DECLARE), (GAUSSIAN, "x", 1, GAUSSIAN_DECLARE),
                 ("logdet(X)", "X", 1, None), ("x'*A^5*x", "A", 1, "A: matrix(n,n)")]


@pytest.mark.parametrize("expr, wrt, order, declare", BACKEND_CASES)
def test_jax_backend_agrees_with_numpy(expr, wrt, order, declare):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    r = matdiff.derive(expr, wrt, order=order, declare=declare)
    values = _point(r, np.random.default_rng(6), 4)
    got = np.asarray(r.compile("jax")(**{k: jax.numpy.asarray(v) for k, v in values.items()}))
    assert relative_error(got, r.compile()(**values)) < 1e-12


@pytest.mark.parametrize("expr, wrt, order, declare", BACKEND_CASES)
def test_torch_backend_agrees_with_numpy(expr, wrt, order, declare):
    torch = pytest.importorskip("torch")
    r = matdiff.derive(expr, wrt, order=order, declare=declare)
    values = _point(r, np.random.default_rng(6), 4)
    tensors = {k: torch.as_tensor(v) if np.ndim(v) else v for k, v in values.items()}
    got = r.compile("torch")(**tensors)
    assert got.dtype == torch.float64
    assert relative_error(got.numpy(), r.compile()(**values)) < 1e-12


def test_the_jax_source_is_jit_compatible_and_the_torch_source_keeps_the_device():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    r = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE)
    namespace: dict = {}
    exec(r.source("jax"), namespace)
    values = gaussian_point(3, np.random.default_rng(7))
    jitted = jax.jit(namespace["df_dS"])
    assert relative_error(np.asarray(jitted(**values)), r.numpy()(**values)) < 1e-12
    assert "cuda" not in r.source("torch") and "device=" in r.source("torch")



@pytest.mark.parametrize("expr, wrt, sizes, distributed", [
    # (T - U*V')*V = T*V - U*(V'*V): the n×m product U*V' is never formed
    (FACTORISATION, "U", {"T": (12, 10), "U": (12, 2), "V": (10, 2)}, True),
    # (A + u*v')*w = A*w + u*(v'*w): no outer product
    ("y'*(A + u*v')*w", "y", {"y": (9,), "A": (9, 9), "u": (9,), "v": (9,), "w": (9,)}, True),
    # square factors: distributing would double the matrix products, so (A + B)*C stays
    ("tr((A + B)*C*D)", "D", {"A": (6, 6), "B": (6, 6), "C": (6, 6), "D": (6, 6)}, False),
])
def test_contractions_distribute_over_sums_where_cheaper(expr, wrt, sizes, distributed):
    r = matdiff.derive(expr, wrt)
    rng = np.random.default_rng(8)
    values = {name: rng.standard_normal(shape) for name, shape in sizes.items()}
    fn = r.compile()
    assert relative_error(fn(**values), r.numpy()(**values)) < 1e-12
    program = fn.function(_sizes(r, sizes)).program
    # the n×m temporaries: a sum of matrices (and the product in it) only where not distributed
    temporaries = [n for n in program.nodes if n.ndim == 2 and n.op != "var"
                   and n is not program.outputs[0]]
    sums = [n for n in temporaries if n.op == "sum"]
    assert bool(sums) != distributed, fn.source(_sizes(r, sizes))
    if distributed:
        assert not any(_is_outer_or_large(n, program) for n in temporaries)


def _is_outer_or_large(node, program):
    """A temporary as large as the biggest variable matrix (the product the sum needed)."""
    largest = max(program.size_of(a) * program.size_of(b) for n in program.nodes
                  if n.op == "var" and n.ndim == 2 for a, b in [n.shape])
    return program.size_of(node.shape[0]) * program.size_of(node.shape[1]) >= largest


def _sizes(r, arrays):
    """The symbolic sizes of r's variables, as these array shapes bind them."""
    bound = {}
    for name, shape in arrays.items():
        for d, n in zip(r.variables[name].shape, shape):
            if isinstance(d, str):
                bound[d] = n
    return bound


MERGE_CASES = ["kron(A, B)*vec(X)", "vec(X*A)", "commutation(m, n)*vec(X)", "kron(X, X)",
               "sum(exp(kron(A, B)*vec(X)))", "vec(X)'*kron(A, B)*vec(X)"]
MERGE_SIZES = {"m": 3, "n": 4, "p": 2, "q": 5}


def _merge_point(r, rng):
    return {name: rng.standard_normal(tuple(MERGE_SIZES.get(d, d) for d in decl.shape))
            for name, decl in r.variables.items()}


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("expr", MERGE_CASES)
def test_merged_axes_compile_on_every_backend(expr, backend):
    """vec, kron and the commutation matrix (the IR's merge: axes flattened column-major) in
    compiled code agree with r.numpy(), itself checked against finite differences."""
    if backend != "numpy":
        module = pytest.importorskip(backend)
        if backend == "jax":
            module.config.update("jax_enable_x64", True)
    r = matdiff.derive(expr, "X")
    assert r.check() < 1e-6
    values = _merge_point(r, np.random.default_rng(9))
    got = r.compile(backend)(**values)
    got = got.numpy() if backend == "torch" else np.asarray(got)
    assert relative_error(got, r.numpy()(**values)) < 1e-12
    assert "def " in r.compile(backend).source(MERGE_SIZES)   # no printed form: code all the same


def test_merge_against_numpys_kron():
    """d kron(A, B)/dA[i, j] = kron(E_ij, B): the compiled tensor, slice by slice."""
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((4, 5))
    got = matdiff.derive("kron(A, B)", "A").compile()(A=a, B=b)
    for i in range(3):
        for j in range(2):
            unit = np.zeros((3, 2))
            unit[i, j] = 1.0
            assert np.array_equal(got[:, :, i, j], np.kron(unit, b))


def test_constant_scalars_are_folded_when_the_code_is_written():
    """(2*pi)^(-k/2) needs log(2*pi): a number in the source, not a computation per call."""
    fn = matdiff.compile(GAUSSIAN, wrt=["x"], declare=GAUSSIAN_DECLARE, value=True)
    source = re.sub(r'"""[^"]*"""', "", fn.source())
    assert "math.pi" not in source and repr(float(np.log(2 * np.pi))) in source, source
    point = gaussian_point(5, np.random.default_rng(11))
    d = point["x"] - point["m"]
    f = np.exp(-2.5 * np.log(2 * np.pi) - np.linalg.slogdet(point["S"])[1] / 2
               - d @ np.linalg.solve(point["S"], d) / 2)
    assert abs(fn(**point)[0] - f) < 1e-12 * f


def _path_cost(spec: str, shapes, path) -> int:
    inputs, out = spec.split("->")
    ops = [set(t) for t in inputs.split(",")]
    size = {c: d for t, sh in zip(inputs.split(","), shapes) for c, d in zip(t, sh)}
    total = 0
    for pair in path:
        picked = [ops[p] for p in pair]
        for p in sorted(pair, reverse=True):
            del ops[p]
        met = set().union(*picked)
        total += int(np.prod([size[c] for c in met]))
        ops.append(met & (set(out).union(*ops)))
    return total


def test_the_contraction_order_of_a_few_factors_is_the_cheapest():
    """Every order is tried for up to four factors: no order opt_einsum finds (its optimal
    search) costs less, and the order computes the same tensor as a plain einsum."""
    from matdiff.numeric.plan import _cheapest_path
    opt_einsum = pytest.importorskip("opt_einsum")
    rng = np.random.default_rng(9)
    specs = ["ab,bc,cd->ad", "ab,bc,cd,de->ae", "ij,jk,k->i", "ab,cb,cd,a->d",
             "ij,jk,kl,li->", "abc,cd,de->abe"]
    for spec in specs:
        for _ in range(4):
            letters = sorted(set(spec) - set(",->"))
            size = dict(zip(letters, rng.integers(2, 40, len(letters))))
            shapes = [tuple(int(size[c]) for c in t) for t in spec.split("->")[0].split(",")]
            mine = _cheapest_path(spec, shapes)
            theirs = opt_einsum.contract_path(spec, *shapes, shapes=True,
                                              optimize="optimal")[0]
            assert _path_cost(spec, shapes, mine) <= _path_cost(spec, shapes, theirs)
            arrays = [rng.standard_normal(sh) for sh in shapes]
            ordered = np.einsum(spec, *arrays, optimize=["einsum_path", *mine])
            assert relative_error(ordered, np.einsum(spec, *arrays)) < 1e-12
