"""Shared checks for solve's tests: every number here comes from matdiff.derive / evaluate or
from NumPy written independently of the solver."""

import numpy as np

import matdiff


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def gradient_size(sol, point: dict) -> float:
    """max over the unknowns of |derived gradient| / |the gradient at the point moved by 10%|:
    small where the point is stationary (the unmoved size is the yardstick of its terms)."""
    worst = 0.0
    for u in sol.gradients:
        r = matdiff.derive(sol.objective, u, declare=sol.declare)
        g = np.linalg.norm(r.numpy()(**point))
        moved = np.linalg.norm(r.numpy()(**{**point, u: 1.1 * np.asarray(point[u])}))
        worst = max(worst, g / max(moved, 1e-300))
    return worst


def steps_hold(sol, point: dict, declarations: str) -> None:
    """Each step's equation, read back from its text, holds at the solution: both sides
    evaluate equal there (relative to their size away from it), and the text evaluates to the
    same value as the step's own expression (compared away from the solution, where the sides
    are not near zero)."""
    solved = sol.unknowns + ((sol.multiplier,) if sol.multiplier else ())
    moved = {**point, **{u: 1.1 * np.asarray(point[u]) for u in solved}}
    shapes = {n: d.shape for n, d in sol.variables.items()}
    for step in sol.steps:
        texts = step.text.split(" = ")
        assert len(texts) == 2, step.text
        at, away = [], []
        for text, expr in zip(texts, (step.lhs, step.rhs)):
            if text == "0":
                at.append(np.zeros(1))
                away.append(np.zeros(1))
                continue
            value = np.asarray(matdiff.evaluate(text, declarations, **moved), dtype=float)
            own = matdiff.api.compile_numpy(expr, shapes)(**moved)
            assert relative(value, own) < 1e-12, (step.move, text)
            away.append(value)
            at.append(np.asarray(matdiff.evaluate(text, declarations, **point), dtype=float))
        scale = max(np.max(np.abs(away[0])), np.max(np.abs(away[1])))
        assert np.max(np.abs(at[0] - at[1])) < 1e-9 * scale, (step.move, step.text)
