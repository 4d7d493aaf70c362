"""``matdiff em demo``: derive the M-step from the Q-function, fit a 2-D mixture with a
progress bar, and save a picture of the fit (matplotlib, the optional [em] extra)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from ..api import derive
from .mixture import GaussianMixture
from .updates import UPDATES, WEIGHTS

BAR = 30


def derivation(rng: np.random.Generator) -> list[str]:
    """The gradient of each objective by matdiff, the update that zeroes it, and the size of
    the gradient there on random data."""
    Y = rng.normal(size=(50, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]])
    R = rng.dirichlet(np.ones(3), size=50)
    r = R[:, 0]
    full = UPDATES["full"]
    m = full["m"].evaluate(Y=Y, r=r)
    S = full["S"].evaluate(Y=Y, r=r, m=m)
    w = WEIGHTS.evaluate(R=R)
    at = {"m": dict(Y=Y, r=r, m=m, S=S), "S": dict(Y=Y, r=r, m=m, S=S),
          "w": dict(R=R, w=w, c=float(len(Y)))}
    lines = [f"Q = {full['m'].objective}", f"    declared: {full['S'].declare}", ""]
    for target, update in (("m", full["m"]), ("S", full["S"]), ("w", WEIGHTS)):
        if target == "w":
            lines += ["mixing weights on the simplex, with a Lagrange multiplier c:",
                      f"L = {update.objective}"]
        r_ = derive(update.objective, target, declare=update.declare)
        gradient = np.max(np.abs(r_.numpy()(**at[target])))
        lines += [f"dQ/d{target} = {r_.text}" if target != "w" else f"dL/dw = {r_.text}",
                  f"  = 0 at  {update}" + ("   (c = N)" if target == "w" else ""),
                  f"  check: max |gradient| at the update on random data = {gradient:.1e}", ""]
    lines.append("the other covariance types (model.updates_):")
    for kind in ("tied", "diag", "spherical"):
        cov = UPDATES[kind]["v" if kind == "spherical" else "S"]
        lines.append(f"  {kind:9s} {cov}")
    return lines


def progress(total: int = 100, stream=None) -> Callable[[int, float], None]:
    """A one-line progress bar over EM iterations, showing the lower bound (redrawn in place
    on a terminal; one line per ten iterations otherwise, so logs stay readable)."""
    stream = stream or sys.stderr
    live = stream.isatty()

    def show(n_iter: int, bound: float) -> None:
        filled = min(BAR, BAR * n_iter // total)
        line = (f"  EM [{'#' * filled}{'.' * (BAR - filled)}] iteration {n_iter:3d}/{total}"
                f"  lower bound {bound: .6f}")
        if live:
            stream.write("\r" + line)
        elif n_iter % 10 == 0 or n_iter == 1:
            stream.write(line + "\n")
        stream.flush()
    return show


def sample_mixture(rng: np.random.Generator, n: int = 1500) -> np.ndarray:
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.5, 4.0]])
    shapes = [np.array([[1.0, 0.0], [0.6, 0.5]]), np.array([[0.4, 0.3], [0.0, 1.0]]),
              np.array([[0.8, -0.5], [0.0, 0.4]])]
    labels = rng.integers(3, size=n)
    noise = rng.normal(size=(n, 2))
    return np.array([centres[k] + shapes[k] @ z for k, z in zip(labels, noise)])


def run(out: str | None, seed: int, stream=None) -> int:
    stream = stream or sys.stdout
    print("The M-step of a Gaussian mixture, derived by matdiff from EM's Q-function for one "
          "component (responsibilities r, data rows Y):\n", file=stream)
    print("\n".join(derivation(np.random.default_rng([seed, 1]))), file=stream)
    X = sample_mixture(np.random.default_rng(seed))
    max_iter = 100
    print(f"\nfitting 3 components to {len(X)} points in 2-D:", file=stream)
    model = GaussianMixture(3, max_iter=max_iter, tol=1e-8, random_state=seed,
                            init_params="random", callback=progress(total=max_iter))
    model.fit(X)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    state = "converged" if model.converged_ else "stopped at max_iter"
    print(f"  {state} after {model.n_iter_} iterations, lower bound {model.lower_bound_:.6f}",
          file=stream)
    for k in np.argsort(model.means_[:, 0]):
        mean = np.round(model.means_[k], 3) + 0.0  # no "-0."
        print(f"  w = {model.weights_[k]:.3f}  m = {mean}", file=stream)
    if out is None:
        return 0
    try:
        import matplotlib
    except ImportError:
        print("  (no plot: matplotlib is not installed; pip install 'matdiff[em]')", file=stream)
        return 0
    matplotlib.use("Agg")  # files only, no display needed
    save_plot(model, X, out)
    print(f"  plot saved to {out}", file=stream)
    return 0


def save_plot(model: GaussianMixture, X: np.ndarray, path: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.scatter(X[:, 0], X[:, 1], c=model.predict(X), s=6, cmap="viridis", alpha=0.6)
    for mean, cov in zip(model.means_, model.covariances_):
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        for radius in (1, 2):  # one and two standard deviations
            left.add_patch(Ellipse(mean, *(2 * radius * np.sqrt(values[::-1])), angle=angle,
                                   fill=False, color="crimson", lw=1.2))
    left.set_title("data and fitted components (1 and 2 sd)")
    left.set_aspect("equal")
    right.plot(np.arange(1, len(model.lower_bounds_) + 1), model.lower_bounds_, marker=".")
    right.set_xlabel("iteration")
    right.set_ylabel("lower bound (mean log-likelihood)")
    right.set_title("EM: the lower bound per iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
