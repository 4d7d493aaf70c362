"""matdiff.em's M-step is what solve derives: each Update's formula is solve's closed form
for its objective (tests/em/test_updates.py checks them against the textbook updates, for all
four covariance types, on random data)."""

import pytest

import matdiff
from matdiff.em import updates


@pytest.mark.parametrize("kind", updates.COVARIANCE_TYPES)
def test_updates_are_solved(kind):
    ups = updates.UPDATES[kind]
    full = f"S: symmetric posdef matrix(d,d); {updates.ONE}"
    assert ups["m"].formula == matdiff.solve(updates.Q_ONE, "m", declare=full).forms["m"].plain
    w = matdiff.solve("(R'*vector(1))'*log(w)", "w", declare="w: positive vector(K); "
                      "R: matrix(n,K)", constraint="simplex")
    assert ups["w"].formula == w.forms["w"].plain and ups["w"].objective == w.objective
    if kind == "diag":
        s = matdiff.solve(updates.Q_DIAGONAL, "s", declare=f"s: positive vector(d); "
                          f"{updates.ONE}").forms["s"].plain
        assert ups["S"].formula == f"diag({s})"
    else:
        target = "v" if kind == "spherical" else "S"
        u = ups[target]
        wrt = "m, S" if kind == "full" else target
        objective = updates.Q_ONE if kind == "full" else u.objective
        assert u.formula == matdiff.solve(objective, wrt, declare=u.declare).forms[target].plain
