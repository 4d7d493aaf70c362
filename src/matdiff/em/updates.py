"""The M-step of a Gaussian mixture, kept as data: each update is a formula in matdiff's input
language together with the objective whose gradient it zeroes.

For one component with responsibilities ``r`` (one per sample, the rows of ``Y``) the
expected complete-data log-likelihood (EM's Q-function, constants dropped) is

    Q(m, S) = -1/2*sum(r)*logdet(S) - 1/2*tr(inv(S)*(Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m'))

and each covariance type restricts S (full, diagonal, v*eye, or one S shared by all
components, where Q sums over the components: responsibilities ``R``, means ``M`` as rows).
The mixing weights maximise n'*log(w) on the simplex, with a Lagrange multiplier c.

Today the formulas are written here and verified against matdiff's derivatives (tests/em:
the derived gradient of each objective vanishes at its update); a closed-form ``solve`` can
produce the same records later without changing their users.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _q(covariance: str) -> str:
    return f"-1/2*sum(r)*logdet(S) - 1/2*tr(inv(S)*{covariance})"


Q_ONE = _q(SCATTER)
Q_SPHERICAL = f"-1/2*d*sum(r)*log(v) - 1/2/v*tr({SCATTER})"
Q_TIED = f"-1/2*sum(R)*logdet(S) - 1/2*tr(inv(S)*({POOLED}))"

WEIGHTS = Update("w", "R'*vector(1)/sum(R)", "(R'*vector(1))'*log(w) - c*(vector(1)'*w - 1)",
                 "w: positive vector(K); c: scalar; R: matrix(n,K)")
MEAN = Update("m", "Y'*r/sum(r)", Q_ONE, f"S: symmetric posdef matrix(d,d); {ONE}")

UPDATES: dict[str, dict[str, Update]] = {
    "full": {
        "w": WEIGHTS, "m": MEAN,
        "S": Update("S", f"{SCATTER}/sum(r)", Q_ONE, f"S: symmetric posdef matrix(d,d); {ONE}"),
    },
    "tied": {
        "w": WEIGHTS, "m": MEAN,
        "S": Update("S", f"({POOLED})/sum(R)", Q_TIED, f"S: symmetric posdef matrix(d,d); {ALL}"),
    },
    "diag": {
        "w": WEIGHTS, "m": MEAN,
        "S": Update("S", f"diag(diag({SCATTER}))/sum(r)", Q_ONE,
                    f"S: diagonal posdef matrix(d,d); {ONE}"),
    },
    "spherical": {
        "w": WEIGHTS, "m": MEAN,
        "v": Update("v", f"tr({SCATTER})/(d*sum(r))", Q_SPHERICAL,
                    f"v: positive scalar; d: scalar; {ONE}"),
    },
}

