"""Values passed for variables: numbers, checked against what was declared.

Every problem is a MatdiffError naming the variable. A value that breaks a declared property
(a non-symmetric array for a symmetric variable, say) is refused rather than repaired: the
printed formula was derived under that property (``tr(S*S*S)`` gives ``3*S*S``, which equals
the derivative only for a symmetric S), so evaluating it elsewhere would mean something else.
"""

from __future__ import annotations

import math
from numbers import Number

import numpy as np

from .. import budget
from ..errors import MatdiffError

SYMMETRY_TOLERANCE = 1e-10  # relative to the largest entry: rounding, not asymmetry


def as_value(name: str, value: object, props: frozenset[str]) -> np.ndarray:
    """``value`` as a float array, or a MatdiffError saying what is wrong with it."""
    array = _numeric_array(name, value)
    budget.check("array_elements", array.size, f"the value of {name} ({array.size:,} entries)")
    if not np.all(np.isfinite(array)):
        bad = "NaN" if np.any(np.isnan(array)) else "an infinite entry"
        raise MatdiffError(f"the value of {name} contains {bad}",
                           hint="pass finite numbers")
    _check_properties(name, array, props)
    return array


def _numeric_array(name: str, value: object) -> np.ndarray:
    if isinstance(value, (str, bytes, dict, set, frozenset)) or not (
            isinstance(value, (Number, np.ndarray, np.generic, list, tuple))):
        raise MatdiffError(f"the value of {name} must be a number or an array of numbers, not "
                           f"{type(value).__name__}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:
        raise MatdiffError(f"the value of {name} is beyond floating-point range")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        kind = "complex numbers" if array is not None and array.dtype.kind == "c" else \
            "numbers in a regular (not ragged) nesting"
        raise MatdiffError(f"the value of {name} must be an array of real {kind}",
                           hint="pass a float, a list of floats or a NumPy array")
    try:
        return array.astype(float)
    except OverflowError:
        raise MatdiffError(f"the value of {name} is beyond floating-point range") from None


def _check_properties(name: str, x: np.ndarray, props: frozenset[str]) -> None:
    if not props or x.ndim != 2 or x.shape[0] != x.shape[1]:
        if "positive" in props and np.any(x <= 0):
            raise MatdiffError(f"{name} is declared positive, but its value has entries <= 0")
        return
    scale = float(np.max(np.abs(x), initial=0.0)) or 1.0
    if "symmetric" in props and np.max(np.abs(x - x.T), initial=0.0) > \
            SYMMETRY_TOLERANCE * scale:
        raise MatdiffError(f"{name} is declared symmetric, but its value is not",
                           hint=f"pass (M + M.T)/2, or drop 'symmetric' from {name}'s "
                                "declaration")
    if "diagonal" in props and np.any(x[~np.eye(x.shape[0], dtype=bool)] != 0):
        raise MatdiffError(f"{name} is declared diagonal, but its value has off-diagonal "
                           "entries")
    if "posdef" in props and not _is_posdef(x):
        raise MatdiffError(f"{name} is declared posdef, but its value is not positive "
                           "definite")
    if "positive" in props and np.any(x <= 0):
        raise MatdiffError(f"{name} is declared positive, but its value has entries <= 0")


def _is_posdef(x: np.ndarray) -> bool:
    try:
        np.linalg.cholesky((x + x.T) / 2)
    except np.linalg.LinAlgError:
        return False
    return math.isfinite(float(np.sum(x)))
