"""Gaussian mixtures fitted by EM, with M-step updates kept as matdiff formulas."""

from .updates import COVARIANCE_TYPES, UPDATES, Update

__all__ = ["COVARIANCE_TYPES", "UPDATES", "Update"]
