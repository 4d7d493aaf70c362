"""Stationary points: the gradient set to zero and solved in closed form (normal equations,
maximum likelihood, EM's M-step), or numerically where no closed form is found."""

from .closed import NO_CLOSED_FORM, solve
from .solution import Solution, Step

__all__ = ["solve", "Solution", "Step", "NO_CLOSED_FORM"]
