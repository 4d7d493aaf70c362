"""matdiff: derivatives of matrix expressions, in matrix notation, checked numerically.

    >>> import matdiff
    >>> r = matdiff.derive("x'*A*x", wrt="x")
    >>> r.text
    "(A + A')*x"
"""

from .api import Form, Result, derive, evaluate, parse
from .errors import MatdiffError

__all__ = ["derive", "parse", "evaluate", "Result", "Form", "MatdiffError"]
__version__ = "0.1.0"
