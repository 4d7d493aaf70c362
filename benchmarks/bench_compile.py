"""Benchmark compiled matdiff against a hand-written NumPy closed form, JAX and PyTorch.

Run from the repository root:  python benchmarks/bench_compile.py [--quick] [--only NAME]

One child process per framework (NumPy: matdiff and the closed form, interleaved; JAX; torch),
each pinned to one core and one BLAS / XLA / intra-op thread (threadpoolctl for OpenBLAS),
because two OpenBLAS copies and their thread pools fight otherwise and the machine is shared.
Each cell is
timed as the median over repeats of batches of calls (spread: the interquartile range), after
one warm-up call (jit / planning). Every framework's answer is compared with the closed form
(relative Frobenius error, 1e-10 required) and checked for NaN or inf.

Cells: x'*A*x (gradient, Hessian), logistic regression (gradient, Hessian; X 2n×n),
matrix factorisation ||T - U*V'||^2 (gradient, Hessian-vector product, Hessian; rank 4), the
Gaussian NLL N/2*logdet(S) + 1/2*tr(inv(S)*C) (gradient; Hessian at n = 10, 30, 60), the seed's
density with respect to x, m and S together (its value too), and the batched density (N = 2000
samples, gradients by m and S). The JAX and torch functions are what a user would write
(slogdet, solve); the closed forms are the textbook formulas in NumPy.

Prints a table with matdiff/closed and matdiff/JAX (and /torch) ratios, compile times
(derive + plan + emit for the cell's sizes), and exits 1 if an answer disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
NLL = "N/2*logdet(S) + 1/2*tr(inv(S)*C)"
NLL_DECLARE = "S: symmetric posdef matrix(n,n); C: symmetric matrix(n,n); N: scalar"
BATCH = "N/2*logdet(S) + 1/2*tr((X - vector(1)*m')*inv(S)*(X - vector(1)*m')')"
BATCH_DECLARE = "S: symmetric posdef matrix(k,k); X: matrix(N,k); m: vector(k); N: scalar"
LOGISTIC = "sum(log(vector(1) + exp(-y .* (X*w))))"
FACTORISATION = "norm2(T - U*V')^2"
RANK = 4
TOLERANCE = 1e-10
TARGET_BATCH_S = 2e-3      # each timed batch runs at least this long
CELL_BUDGET_S = 1.0        # per cell and framework (fewer repeats for slow cells)
SLOW_S = 2.0               # a framework this slow on a cell skips the cell's larger sizes


# ----------------------------------------------------------------------------------------------
# problems: a point, the matdiff call, the closed form, the JAX and torch versions
# ----------------------------------------------------------------------------------------------

def spd(rng, n):
    f = rng.standard_normal((n, n))
    return f @ f.T / n + np.eye(n)


def point_for(problem, n, seed=0):
    rng = np.random.default_rng(seed)
    if problem == "quad":
        return {"A": rng.standard_normal((n, n)), "x": rng.standard_normal(n)}
    if problem == "logistic":
        return {"X": rng.standard_normal((2 * n, n)) / math.sqrt(n),
                "y": rng.choice([-1.0, 1.0], 2 * n), "w": rng.standard_normal(n)}
    if problem == "mf":
        return {"T": rng.standard_normal((n, n)), "U": rng.standard_normal((n, RANK)),
                "V": rng.standard_normal((n, RANK)), "W": rng.standard_normal((n, RANK))}
    if problem == "nll":
        data = rng.standard_normal((n, 3 * n))
        return {"S": spd(rng, n), "C": data @ data.T, "N": float(3 * n)}
    if problem == "density":
        s = spd(rng, n)
        s /= 2 * np.pi * np.exp(np.linalg.slogdet(s)[1] / n)   # density near 1, det(S) tiny
        m = rng.standard_normal(n)
        return {"S": s, "m": m, "x": m + 0.05 * rng.standard_normal(n), "k": float(n)}
    if problem == "batch":
        samples = 2000
        return {"S": spd(rng, n), "X": rng.standard_normal((samples, n)),
                "m": rng.standard_normal(n), "N": float(samples)}
    raise ValueError(problem)


# (problem, kind, sizes): kind is gradient / hessian / hvp / fandg
CELLS = [("quad", "gradient", (100, 300, 1000)), ("quad", "hessian", (100, 300, 1000)),
         ("logistic", "gradient", (100, 300, 1000)), ("logistic", "hessian", (100, 300, 1000)),
         ("mf", "gradient", (100, 300, 1000)), ("mf", "hvp", (100, 300, 1000)),
         ("mf", "hessian", (100, 300, 1000)),
         ("nll", "gradient", (100, 300, 1000)), ("nll", "hessian", (10, 30, 60)),
         ("density", "fandg", (100, 300, 1000)), ("batch", "gradient", (30, 100))]


def matdiff_function(problem, kind):
    import matdiff
    expr, declare, wrt = {
        "quad": ("x'*A*x", None, "x"), "logistic": (LOGISTIC, None, "w"),
        "mf": (FACTORISATION, None, "U"), "nll": (NLL, NLL_DECLARE, "S"),
        "density": (GAUSSIAN, GAUSSIAN_DECLARE, ["x", "m", "S"]),
        "batch": (BATCH, BATCH_DECLARE, ["m", "S"])}[problem]
    if kind == "hvp":
        return matdiff.compile(expr, wrt=wrt, order=2, direction="W", declare=declare)
    if kind == "fandg":
        return matdiff.compile(expr, wrt=wrt, declare=declare, value=True, symmetric="full")
    if isinstance(wrt, list):
        return matdiff.compile(expr, wrt=wrt, declare=declare, symmetric="full")
    order = 2 if kind == "hessian" else 1
    return matdiff.derive(expr, wrt, declare=declare, order=order,
                          symmetric="full").compile()


def closed_function(problem, kind):
    """The textbook formulas, written once in NumPy as a careful person would."""
    if problem == "quad":
        if kind == "gradient":
            return lambda A, x: A @ x + A.T @ x
        return lambda A, x: A + A.T
    if problem == "logistic":
        def grad(X, y, w):
            e = np.exp(-y * (X @ w))
            return -X.T @ (y * e / (1 + e))

        def hess(X, y, w):
            e = np.exp(-y * (X @ w))
            return X.T @ ((y * y * e / (1 + e) ** 2)[:, None] * X)
        return grad if kind == "gradient" else hess
    if problem == "mf":
        if kind == "gradient":
            return lambda T, U, V, W: -2 * (T - U @ V.T) @ V
        if kind == "hvp":
            return lambda T, U, V, W: 2 * W @ (V.T @ V)
        return lambda T, U, V, W: np.kron(np.eye(len(U)), 2 * V.T @ V).reshape(
            len(U), RANK, len(U), RANK)
    if problem == "nll":
        if kind == "gradient":
            def grad(S, C, N):
                p = np.linalg.inv(S)
                return 0.5 * (N * p - p @ C @ p)
            return grad

        def hess(S, C, N):
            p = np.linalg.inv(S)
            q = p @ C @ p
            # dG[j,i]/dS[k,l] with G = 1/2*(N*inv(S)' - (P*C*P)') and dP = -P*dS*P
            return 0.5 * (-N * np.einsum("jk,li->ijkl", p, p) + np.einsum("jk,li->ijkl", p, q)
                          + np.einsum("jk,li->ijkl", q, p))
        return hess
    if problem == "density":
        def fandg(S, m, x, k):
            p = np.linalg.inv(S)
            _, logdet = np.linalg.slogdet(S)
            d = x - m
            w = p @ d
            f = np.exp(-k / 2 * np.log(2 * np.pi) - logdet / 2 - d @ w / 2)
            return f, -f * w, f * w, 0.5 * f * (np.outer(w, w) - p)
        return fandg
    if problem == "batch":
        def grad(S, X, m, N):
            p = np.linalg.inv(S)
            z = (X - m) @ p
            return -z.sum(axis=0), 0.5 * (N * p - z.T @ z)
        return grad
    raise ValueError(problem)


def scalar_function(problem, xp, linalg):
    """f in an autodiff framework's NumPy-like API (``xp``), as its user would write it."""
    if problem == "quad":
        return lambda x, A: x @ A @ x
    if problem == "logistic":
        return lambda w, X, y: xp.sum(xp.log(1 + xp.exp(-y * (X @ w))))
    if problem == "mf":
        return lambda U, T, V: xp.sum((T - U @ V.T) ** 2)
    if problem == "nll":
        return lambda S, C, N: N / 2 * linalg.slogdet(S)[1] + 0.5 * xp.trace(
            linalg.solve(S, C))
    if problem in ("density", "batch"):
        def density(x, m, S, k):
            d = x - m
            return xp.exp(-k / 2 * math.log(2 * math.pi) - linalg.slogdet(S)[1] / 2
                          - d @ linalg.solve(S, d) / 2)

        def batch(m, S, X, N):
            d = X - m
            return N / 2 * linalg.slogdet(S)[1] + 0.5 * xp.sum(d * linalg.solve(S, d.T).T)
        return density if problem == "density" else batch
    raise ValueError(problem)


ARG_ORDER = {"quad": ["x", "A"], "logistic": ["w", "X", "y"], "mf": ["U", "T", "V"],
             "nll": ["S", "C", "N"], "density": ["x", "m", "S", "k"],
             "batch": ["m", "S", "X", "N"]}
DIFF_ARGS = {"density": (0, 1, 2), "batch": (0, 1)}


def jax_function(problem, kind):
    import jax
    import jax.numpy as jnp
    f = scalar_function(problem, jnp, jnp.linalg)
    names = ARG_ORDER[problem]
    argnums = DIFF_ARGS.get(problem, 0)
    if kind == "gradient":
        g = jax.jit(jax.grad(f, argnums=argnums))
    elif kind == "hessian":
        g = jax.jit(jax.hessian(f))
    elif kind == "hvp":
        def hvp(U, T, V, W):
            return jax.jvp(lambda u: jax.grad(f)(u, T, V), (U,), (W,))[1]
        jitted = jax.jit(hvp)
        return lambda **p: jax.block_until_ready(jitted(p["U"], p["T"], p["V"], p["W"]))
    else:
        g = jax.jit(jax.value_and_grad(f, argnums=argnums))
    # JAX dispatches asynchronously: a call is done when its result is ready
    return lambda **p: jax.block_until_ready(g(*(p[n] for n in names)))


def torch_function(problem, kind):
    import torch
    from torch import func
    f = scalar_function(problem, torch, torch.linalg)
    names = ARG_ORDER[problem]
    argnums = DIFF_ARGS.get(problem, 0)
    if kind == "gradient":
        g = func.grad(f, argnums=argnums)
    elif kind == "hessian":
        g = func.hessian(f)
    elif kind == "hvp":
        def hvp(U, T, V, W):
            return func.jvp(lambda u: func.grad(f)(u, T, V), (U,), (W,))[1]
        return lambda **p: hvp(p["U"], p["T"], p["V"], p["W"])
    else:
        g = func.grad_and_value(f, argnums=argnums)

        def value_first(*args):
            grads, value = g(*args)
            return (value, *grads)
        return lambda **p: value_first(*(p[n] for n in names))
    return lambda **p: g(*(p[n] for n in names))


# ----------------------------------------------------------------------------------------------
# the workers (one per process)
# ----------------------------------------------------------------------------------------------

def timed(fn, kwargs, budget=CELL_BUDGET_S):
    """Median and interquartile range of one call's time, over repeated batches."""
    start = time.perf_counter()
    fn(**kwargs)
    single = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(TARGET_BATCH_S / single))
    repeats = int(min(31, max(1 if single > budget else 3, budget / (single * number))))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn(**kwargs)
        samples.append((time.perf_counter() - t) / number)
    q = statistics.quantiles(samples, n=4) if len(samples) >= 4 else [min(samples), 0,
                                                                          max(samples)]
    return statistics.median(samples), q[0], q[2]


def as_arrays(out):
    items, result = [out], []
    while any(isinstance(a, (tuple, list)) for a in items):    # (value, (grads...)) flattened
        items = [b for a in items for b in (a if isinstance(a, (tuple, list)) else (a,))]
    for a in items:
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        result.append(np.asarray(a, dtype=float))
    return result


def cells(quick, only):
    for problem, kind, sizes in CELLS:
        if only and problem != only:
            continue
        for n in sizes[:2] if quick else sizes:
            yield f"{problem}-{kind}-{n}", problem, kind, n


def worker(framework, out_dir, quick, only):
    # every framework's process on one and the same core: a thread setting a library does not
    # honour (XLA's pool measured 1.2 CPU-seconds per second on the logistic gradient) cannot
    # buy it a second core
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if framework == "jax":
        os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        convert = jnp.asarray
        threads = "XLA: 1 intra-op thread (xla_cpu_multi_thread_eigen=false)"
    elif framework == "torch":
        import torch
        torch.set_num_threads(1)
        convert = torch.as_tensor
        threads = f"torch intra-op threads: {torch.get_num_threads()}"
    else:
        convert = None
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(1)
    pools = [f"{p['internal_api']} {p['num_threads']} thread(s)" for p in threadpool_info()]
    if framework != "numpy":
        pools.append(threads)
    pools.append(f"pinned to CPU {min(os.sched_getaffinity(0))}" if pinned else "not pinned")
    print(json.dumps({"threads": pools}), flush=True)
    if framework == "numpy":    # imports and first-use costs, once per process
        import matdiff
        start = time.perf_counter()
        matdiff.derive("x'*inv(A)*x", "x").compile()(A=np.eye(2), x=np.ones(2))
        # and the linear algebra a posdef variable's code imports (SciPy's, where installed)
        matdiff.derive("x'*inv(S)*x", "x", declare="S: posdef matrix(n,n)").compile()(
            S=np.eye(2), x=np.ones(2))
        print(json.dumps({"first_use_s": time.perf_counter() - start}), flush=True)
    too_slow: set[tuple[str, str]] = set()
    for cell, problem, kind, n in cells(quick, only):
        point = point_for(problem, n)
        row = {"cell": cell}
        if (problem, kind) in too_slow:
            row["error"] = f"{framework}: skipped, over {SLOW_S:.0f} s a call at a smaller n"
            print(json.dumps(row), flush=True)
            continue
        try:
            if framework == "numpy":
                start = time.perf_counter()
                fn = matdiff_function(problem, kind)
                fn.prepare(**point)          # plans and emits for these sizes
                row["compile_s"] = time.perf_counter() - start
                closed = closed_function(problem, kind)
                names = set(closed.__code__.co_varnames[:closed.__code__.co_argcount])
                closed_point = {k: v for k, v in point.items() if k in names}
                for name, f, args in (("matdiff", fn, point), ("closed", closed, closed_point)):
                    row[name] = timed(f, args)
                    np.savez(out_dir / f"{name}-{cell}.npz", *as_arrays(f(**args)))
            else:
                args = {k: convert(v) if np.ndim(v) else v for k, v in point.items()}
                make = jax_function if framework == "jax" else torch_function
                fn = make(problem, kind)
                budget = CELL_BUDGET_S * (3 if kind == "hessian" else 1)
                row[framework] = timed(fn, args, budget)
                if row[framework][0] > SLOW_S:
                    too_slow.add((problem, kind))
                np.savez(out_dir / f"{framework}-{cell}.npz", *as_arrays(fn(**args)))
        except Exception as err:            # report and go on with the other cells
            row["error"] = f"{type(err).__name__}: {err}"[:200]
        print(json.dumps(row), flush=True)


# ----------------------------------------------------------------------------------------------
# the parent: run the workers, compare, print the table
# ----------------------------------------------------------------------------------------------

def run_worker(framework, out_dir, args):
    command = [sys.executable, __file__, "--worker", framework, "--out", str(out_dir)]
    if args.quick:
        command.append("--quick")
    if args.only:
        command += ["--only", args.only]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    rows, threads = {}, []
    for line in done.stdout.splitlines():
        data = json.loads(line)
        if "threads" in data:
            threads = data["threads"]
        elif "first_use_s" in data:
            print(f"matdiff's first use in a process (imports): {data['first_use_s'] * 1e3:.0f} ms")
        else:
            rows[data["cell"]] = data
    if done.returncode:
        print(f"{framework} worker failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    return rows, threads


def agreement(out_dir, framework, cell):
    """Max relative error against the closed form over the outputs, or None if missing."""
    mine, ref = out_dir / f"{framework}-{cell}.npz", out_dir / f"closed-{cell}.npz"
    if not mine.exists() or not ref.exists():
        return None, False
    a, b = np.load(mine), np.load(ref)
    worst, finite = 0.0, True
    for key in b.files:
        x, y = a[key].reshape(b[key].shape) if a[key].size == b[key].size else a[key], b[key]
        finite &= bool(np.all(np.isfinite(x)))
        if x.shape != y.shape:
            return math.inf, finite
        worst = max(worst, float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300)))
    return worst, finite


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=("numpy", "jax", "torch"))
    parser.add_argument("--out")
    parser.add_argument("--quick", action="store_true", help="the two smaller sizes only")
    parser.add_argument("--only", help="one problem: quad logistic mf nll density batch")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.out), args.quick, args.only)
        return 0
    frameworks = ["numpy"]
    for name in ("jax", "torch"):
        try:
            __import__(name)
            frameworks.append(name)
        except ImportError:
            print(f"({name} not installed: its columns are empty)")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        results, threads = {}, {}
        for fw in frameworks:
            results[fw], threads[fw] = run_worker(fw, out_dir, args)
        for fw in frameworks:
            print(f"threads ({fw} process): {'; '.join(threads[fw])}")
        header = (f"{'cell':24s} {'matdiff':>10s} {'closed':>10s} {'jax':>10s} {'torch':>10s}"
                  f" {'md/closed':>10s} {'md/jax':>8s} {'md/torch':>8s} {'compile':>8s}"
                  f" {'rel err md/jax/torch':>20s} {'IQR/med':>8s}")
        print(header)
        failed = False
        for cell, *_ in cells(args.quick, args.only):
            row = results["numpy"].get(cell, {})
            times = {"matdiff": row.get("matdiff"), "closed": row.get("closed")}
            for fw in ("jax", "torch"):
                times[fw] = results.get(fw, {}).get(cell, {}).get(fw)
            errors = {}
            for fw in ("matdiff", "jax", "torch"):
                err, finite = agreement(out_dir, fw, cell)
                if err is not None:
                    errors[fw] = err if finite else math.nan
                    if fw == "matdiff" and (err > TOLERANCE or not finite):
                        failed = True
            def ms(t):
                return f"{t[0] * 1e3:9.3f}m" if t else f"{'-':>10s}"

            def ratio(a, b):
                return f"{a[0] / b[0]:.2f}" if a and b else "-"
            worst = "/".join(f"{errors[fw]:.0e}" if fw in errors else "-"
                             for fw in ("matdiff", "jax", "torch"))

            def spread(times):
                t = times["matdiff"]
                return f"{(t[2] - t[1]) / t[0]:.2f}" if t else "-"
            problems = [results[fw].get(cell, {}).get("error") for fw in results]
            print(f"{cell:24s} {ms(times['matdiff'])} {ms(times['closed'])} {ms(times['jax'])} "
                  f"{ms(times['torch'])} {ratio(times['matdiff'], times['closed']):>10s} "
                  f"{ratio(times['matdiff'], times['jax']):>8s} "
                  f"{ratio(times['matdiff'], times['torch']):>8s} "
                  f"{row.get('compile_s', 0) * 1e3:7.1f}m {worst:>20s} {spread(times):>8s}")
            for p in problems:
                if p:
                    print(f"    error: {p}")
        print("times: median per call (m = ms); ratios of medians; IQR/med: matdiff's "
              "interquartile range over its median; compile: derive + plan + emit, first "
              "time this expression is derived in the process for the first size")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
