"""The M-step of a Gaussian mixture, kept as data: each update is a formula in matdiff's input
language, derived by ``matdiff.solve`` from the objective whose gradient it zeroes.

For one component with responsibilities ``r`` (one per sample, the rows of ``Y``) the
expected complete-data log-likelihood (EM's Q-function, constants dropped) is

    Q(m, S) = -1/2*sum(r)*logdet(S) - 1/2*tr(inv(S)*(Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m'))

and each covariance type restricts S: full (m and S solved jointly, m first), diagonal (solved
for the vector s of S = diag(s)), v*eye (Q written in the scalar v), or one S shared by all
components, where Q sums over the components: responsibilities ``R``, means ``M`` as rows.
The mixing weights maximise n'*log(w) on the simplex (solve's Lagrange multiplier c).

The formulas are derived on first use and kept; tests/em checks them against the textbook
updates and against the derived gradients.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..api import evaluate

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

SCATTER = "(Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m')"
POOLED = "Y'*diag(R*vector(1))*Y - Y'*R*M - M'*R'*Y + M'*diag(R'*vector(1))*M"
ONE = "m: vector(d); Y: matrix(n,d); r: vector(n)"
ALL = "M: matrix(K,d); Y: matrix(n,d); R: matrix(n,K)"


@dataclass(frozen=True)
class Update:
    """``target = formula`` maximises ``objective`` over ``target`` (the other parameters
    held at the values named in ``declare``)."""

    target: str
    formula: str
    objective: str
    declare: str

    def __str__(self) -> str:
        return f"{self.target} = {self.formula}"

    def evaluate(self, **arrays: np.ndarray | float) -> np.ndarray:
        """The update's value for these arrays (vectors 1-D), computed by matdiff from the
        formula text."""
        return evaluate(self.formula, self.declare, **arrays)


def _q(covariance: str, logdet: str = "logdet(S)", inverse: str = "inv(S)") -> str:
    return f"-1/2*sum(r)*{logdet} - 1/2*tr({inverse}*{covariance})"


Q_ONE = _q(SCATTER)
Q_DIAGONAL = _q(SCATTER, "logdet(diag(s))", "inv(diag(s))")   # S = diag(s)
Q_SPHERICAL = f"-1/2*d*sum(r)*log(v) - 1/2/v*tr({SCATTER})"
Q_TIED = f"-1/2*sum(R)*logdet(S) - 1/2*tr(inv(S)*({POOLED}))"
FULL = f"S: symmetric posdef matrix(d,d); {ONE}"


def _solved(objective: str, wrt: str, target: str, declare: str,
            constraint: str | None = None):
    from ..solve import solve  # the solver loads with the first update asked for
    sol = solve(objective, wrt, declare=declare, constraint=constraint)
    if not sol.closed:
        raise RuntimeError(f"solve found no M-step for {target}: {sol.reason}")
    return sol


@cache
def _weights() -> Update:
    declare = "w: positive vector(K); R: matrix(n,K)"
    sol = _solved("(R'*vector(1))'*log(w)", "w", "w", declare, constraint="simplex")
    return Update("w", sol.forms["w"].plain, sol.objective, sol.declare)


@cache
def _mean() -> Update:
    return Update("m", _solved(Q_ONE, "m", "m", FULL).forms["m"].plain, Q_ONE, FULL)


@cache
def _covariance(kind: str) -> Update:
    if kind == "full":
        return Update("S", _solved(Q_ONE, "m, S", "S", FULL).forms["S"].plain, Q_ONE, FULL)
    if kind == "tied":
        declare = f"S: symmetric posdef matrix(d,d); {ALL}"
        return Update("S", _solved(Q_TIED, "S", "S", declare).forms["S"].plain, Q_TIED, declare)
    if kind == "diag":
        s = _solved(Q_DIAGONAL, "s", "S", f"s: positive vector(d); {ONE}").forms["s"].plain
        return Update("S", f"diag({s})", Q_ONE, f"S: diagonal posdef matrix(d,d); {ONE}")
    declare = f"v: positive scalar; d: scalar; {ONE}"
    return Update("v", _solved(Q_SPHERICAL, "v", "v", declare).forms["v"].plain, Q_SPHERICAL,
                  declare)


class _Updates(Mapping):
    """covariance type -> {"w", "m", and "S" (or "v" for spherical)}: Update, each derived
    on first use."""

    def __getitem__(self, kind: str) -> dict[str, Update]:
        if kind not in COVARIANCE_TYPES:
            raise KeyError(kind)
        cov = _covariance(kind)
        return {"w": _weights(), "m": _mean(), cov.target: cov}

    def __iter__(self) -> Iterator[str]:
        return iter(COVARIANCE_TYPES)

    def __len__(self) -> int:
        return len(COVARIANCE_TYPES)


UPDATES: Mapping[str, dict[str, Update]] = _Updates()


def __getattr__(name: str) -> Update:
    # WEIGHTS and MEAN are derived on first use, like UPDATES
    if name == "WEIGHTS":
        return _weights()
    if name == "MEAN":
        return _mean()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
