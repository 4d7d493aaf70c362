"""matdiff: derivatives of matrix expressions, in matrix notation, checked numerically.

    >>> import matdiff
    >>> r = matdiff.derive("x'*A*x", wrt="x")
    >>> r.text
    "(A + A')*x"
"""

from .api import Form, Result, compile, derive, evaluate, parse
from .budget import LimitError, Limits, limits
from .errors import MatdiffError
from .solve import Solution, solve

__all__ = ["derive", "parse", "evaluate", "compile", "solve", "Result", "Form", "Solution",
           "MatdiffError", "LimitError", "Limits", "limits"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # matdiff.em (Gaussian mixtures) loads on first use, not with the derivative engine
    if name == "em":
        import importlib
        return importlib.import_module(".em", __name__)
    raise AttributeError(f"module 'matdiff' has no attribute {name!r}")
