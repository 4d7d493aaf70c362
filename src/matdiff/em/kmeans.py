"""Initial responsibilities: k-means (Lloyd's iterations from k-means++ seeds), k-means++ seeds
alone, random responsibilities, or random data points; scikit-learn's ``init_params``."""

from __future__ import annotations

import numpy as np

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def initial_responsibilities(X: np.ndarray, k: int, method: str,
                             rng: np.random.RandomState) -> np.ndarray:
    n = X.shape[0]
    if method == "random":  # as scikit-learn draws it, so one seed gives both the same start
        resp = rng.uniform(size=(n, k))
        return resp / resp.sum(axis=1)[:, None]
    resp = np.zeros((n, k))
    if method == "random_from_data":
        resp[rng.choice(n, size=k, replace=False), np.arange(k)] = 1
    elif method == "k-means++":
        resp[_seeds(X, k, rng), np.arange(k)] = 1
    else:
        resp[np.arange(n), lloyd(X, X[_seeds(X, k, rng)])] = 1
    return resp


def _sq_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d2 = (np.sum(X * X, axis=1)[:, None] - 2 * X @ centres.T
          + np.sum(centres * centres, axis=1)[None, :])
    return np.maximum(d2, 0)


def _seeds(X: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """k-means++ (Arthur & Vassilvitskii 2007): each seed drawn with probability proportional
    to the squared distance to the nearest seed so far."""
    chosen = [rng.randint(X.shape[0])]
    nearest = _sq_distances(X, X[chosen])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        pick = rng.choice(X.shape[0], p=nearest / total) if total > 0 else rng.randint(
            X.shape[0])
        chosen.append(pick)
        nearest = np.minimum(nearest, _sq_distances(X, X[[pick]])[:, 0])
    return np.array(chosen)


def lloyd(X: np.ndarray, centres: np.ndarray, max_iter: int = 300,
          tol: float = 1e-4) -> np.ndarray:
    """Labels after Lloyd's iterations; stops when the centres move less than ``tol`` times
    the data's mean variance (scikit-learn's criterion)."""
    threshold = tol * np.mean(np.var(X, axis=0))
    centres = centres.astype(np.float64)
    for _ in range(max_iter):
        labels = np.argmin(_sq_distances(X, centres), axis=1)
        counts = np.bincount(labels, minlength=len(centres))
        moved = centres.copy()
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, X)
        filled = counts > 0
        moved[filled] = sums[filled] / counts[filled, None]
        shift = np.sum((moved - centres) ** 2)
        centres = moved
        if shift <= threshold:
            break
    return np.argmin(_sq_distances(X, centres), axis=1)
