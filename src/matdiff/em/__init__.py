"""Gaussian mixtures fitted by EM, with the M-step updates kept as matdiff formulas."""

from .kernels import FitError
from .mixture import ConvergenceWarning, GaussianMixture, NotFittedError
from .updates import COVARIANCE_TYPES, UPDATES, Update

__all__ = ["GaussianMixture", "UPDATES", "Update", "COVARIANCE_TYPES", "FitError",
           "NotFittedError", "ConvergenceWarning"]
