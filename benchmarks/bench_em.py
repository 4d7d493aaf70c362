"""Benchmark one EM iteration of matdiff.em.GaussianMixture against scikit-learn's, and a Dask
fit of data that is never materialised.

Run from the repository root (needs the [em] extra):

    python benchmarks/bench_em.py                 # in memory: the two sizes below
    python benchmarks/bench_em.py --dask 1e8      # Dask: N rows generated chunk by chunk

In memory, for (N, d, K) = (100,000, 16, 8) and (100,000, 64, 32), full covariances: fits of
ITERATIONS iterations from the same parameters (tol=0), repeated and interleaved in one process,
each iteration timed inside the fit's own loop (scikit-learn's per-iteration hook, matdiff's
callback):
  - scikit-learn's GaussianMixture;
  - matdiff's, on NumPy in float64 and float32, and on the torch and jax backends (float64)
    where installed;
  - the FLOP-count limit: a square matmul of the same FLOPs, (a) the textbook count of a
    full-covariance EM iteration, 4 N K d^2 (whiten the data per component, then the
    responsibility-weighted second moments), and (b) the count of matdiff's algorithm,
    4 N K d(d+1)/2 (quadratic features shared by the components).
Printed: medians (and the spread, min..max) in ms, scikit-learn / matdiff (target >= 5), matdiff /
matmul (target <= 2).

Dask (a fresh process, so its peak memory is its own): N rows, d=16, K=8, full, chunks of
CHUNK_ROWS generated from a seed per chunk inside the tasks, never held together; the threaded
scheduler. Printed: seconds per iteration (each iteration regenerates the data), the CPU
seconds per iteration (a measure that a busy machine does not inflate much), and the peak
resident memory of the process (target < 4 GiB at N = 10^8).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from matdiff.em import GaussianMixture  # noqa: E402

SIZES = [(100_000, 16, 8), (100_000, 64, 32)]
REPEATS = 7
ITERATIONS = 6      # per timed fit
COUNTED = 2         # iterations counted from the third: the first builds the kept features,
                    # the first two may follow another variant's BLAS threads (they spin on)
CHUNK_ROWS = 500_000
BACKENDS = ("torch", "jax")   # timed besides NumPy where installed (--backends)


def mixture_data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 3 * np.random.default_rng(12345).normal(size=(k, d))
    return rng.standard_normal((n, d)) + centres[rng.integers(k, size=n)]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _summary(times: list[float]) -> str:
    ms = [t * 1e3 for t in times]
    return f"{statistics.median(ms):9.1f} ms ({min(ms):.1f}..{max(ms):.1f})"


def _iteration_times(fit) -> list[float]:
    """The duration of each iteration of one fit: ``fit(stamp)`` runs it, calling ``stamp()``
    at the end of every iteration."""
    stamps = []
    start = time.perf_counter()
    fit(lambda *_: stamps.append(time.perf_counter()))
    return list(np.diff([start, *stamps]))


def in_memory(n: int, d: int, k: int, repeats: int = REPEATS,
              backends: tuple[str, ...] = BACKENDS) -> None:
    from sklearn.mixture import GaussianMixture as SklearnMixture

    X = mixture_data(n, d, k, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(k, random_state=0, max_iter=3).fit(X)   # k-means start
    given = dict(weights_init=start.weights_, means_init=start.means_,
                 precisions_init=start.precisions_, max_iter=ITERATIONS, tol=0)

    def sklearn_fit(stamp):
        model = SklearnMixture(k, **given)
        model._print_verbose_msg_iter_end = stamp     # called at the end of each iteration
        model.fit(X)

    def fit(data, backend="numpy"):
        return lambda stamp: GaussianMixture(k, backend=backend, callback=stamp,
                                             **given).fit(data)

    variants = {"scikit-learn": sklearn_fit, "matdiff": fit(X),
                "matdiff float32": fit(X.astype(np.float32))}
    for backend in backends:
        try:
            if backend == "jax":
                import jax
                jax.config.update("jax_enable_x64", True)
            else:   # OpenMP's spinning threads collapse on a shared 2-core machine (measured)
                import torch
                torch.set_num_threads(1)
            variants[f"matdiff {backend}"] = fit(X, backend)
        except ImportError:
            print(f"({backend} not installed: no {backend} row)")

    textbook = 4 * n * k * d * d
    features = 4 * n * k * d * (d + 1) // 2
    mats = {}
    for name, flops in (("textbook", textbook), ("features", features)):
        side = round((flops / 2) ** (1 / 3))
        mats[name] = (np.random.rand(side, side), np.random.rand(side, side))
    times = {**{name: [] for name in variants}, "textbook": [], "features": []}
    first = {name: [] for name in variants}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # tol=0: no fit converges
        for fn in variants.values():
            _iteration_times(fn)            # warm caches, thread pools and jit once
        for _ in range(repeats):
            for name, fn in variants.items():
                each = _iteration_times(fn)
                first[name].append(each[0])
                times[name].extend(each[COUNTED:])
            for name, (a, b) in mats.items():
                times[name].extend(_timed(lambda a=a, b=b: a @ b) for _ in range(3))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"\nN={n:,} d={d} K={k} full, one EM iteration inside a fit ({repeats} fits each, "
          f"iterations {COUNTED + 1}..{ITERATIONS} of each), median (min..max); the first "
          f"iteration of a fit, median:")
    for name in variants:
        first_ms = statistics.median(first[name]) * 1e3
        print(f"  {name:16s}{_summary(times[name])}   first {first_ms:.1f} ms")
    print(f"  matmul, 4NKd^2 = {textbook / 1e9:.2f} GFLOP        {_summary(times['textbook'])}")
    print(f"  matmul, 4NKd(d+1)/2 = {features / 1e9:.2f} GFLOP   {_summary(times['features'])}")
    for name in variants:
        if name == "scikit-learn":
            continue
        print(f"  {name} / matmul(4NKd^2) = {med[name] / med['textbook']:.2f} (target <= 2); "
              f"/ matmul(own FLOPs) = {med[name] / med['features']:.2f}; "
              f"scikit-learn / {name} = {med['scikit-learn'] / med[name]:.1f}x (target >= 5)")


def _chunk(block_id=None, rows: int = 0, d: int = 0, k: int = 0, seed: int = 0):
    return mixture_data(rows, d, k, seed=(seed, block_id[0]))


def dask_fit(n: int, d: int = 16, k: int = 8, iterations: int = 3) -> None:
    import dask
    import dask.array as da

    rows = min(CHUNK_ROWS, n)
    chunks = ((rows,) * (n // rows) + ((n % rows,) if n % rows else ()), (d,))
    X = da.map_blocks(_chunk, dtype=np.float64, chunks=chunks, rows=rows, d=d, k=k, seed=7)
    # the start: a fit on one generated chunk, given to the Dask fit (no sample pass)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = GaussianMixture(k, random_state=0, max_iter=20).fit(mixture_data(20_000, d, k, 1))
    stamps = [(time.perf_counter(), time.process_time())]
    model = GaussianMixture(k, max_iter=iterations, tol=0, weights_init=small.weights_,
                            means_init=small.means_, precisions_init=small.precisions_,
                            callback=lambda i, b: stamps.append((time.perf_counter(),
                                                                 time.process_time())))
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    per_iteration, cpu = np.diff(np.array(stamps), axis=0).T
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux
    print(f"\nDask: N={n:,} d={d} K={k} full, {len(chunks[0])} chunks of {rows:,} rows "
          f"({rows * d * 8 / 2 ** 20:.0f} MiB each), generated inside the tasks, threads")
    print("  seconds per iteration: " + ", ".join(f"{t:.1f}" for t in per_iteration)
          + f" (median {np.median(per_iteration):.1f}); CPU seconds per iteration (all "
          f"threads; a loaded machine's wall time is not): median {np.median(cpu):.1f}")
    print(f"  peak resident memory of the process: {peak_gib:.2f} GiB (target < 4 GiB)")
    print("  lower bound per iteration: " + ", ".join(f"{b:.4f}" for b in model.lower_bounds_))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dask", type=float, default=None, metavar="N",
                        help="run the Dask benchmark with N rows instead")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--backends", default=",".join(BACKENDS), metavar="NAMES",
                        help="the accelerator backends timed besides NumPy, comma-separated "
                             "('' for none: their thread pools then cannot share the cores)")
    parser.add_argument("--size", default=None, metavar="N,d,K",
                        help="one in-memory size instead of both, e.g. 100000,64,32")
    args = parser.parse_args()
    if args.dask is not None:
        dask_fit(int(args.dask), iterations=args.iterations)
        return
    backends = tuple(filter(None, args.backends.split(",")))
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"--backends: unknown {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(BACKENDS)}, or '' for NumPy alone")
    sizes = [tuple(int(v) for v in args.size.split(","))] if args.size else SIZES
    for n, d, k in sizes:
        in_memory(n, d, k, args.repeats, backends)


if __name__ == "__main__":
    main()
