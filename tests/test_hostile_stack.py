"""The recursive passes (raising, rendering, the notation tree's sizes) stay well inside the
stack at the nesting limit: each deep input is derived and printed with Python's recursion
limit held at STACK_FRAMES, far below what ``budget.request`` grants (2,000 + 60 per level),
in a thread of its own so the frames counted are matdiff's alone."""

from __future__ import annotations

import sys
import threading

import pytest

import matdiff

DEPTH = matdiff.Limits().depth
STACK_FRAMES = 8 * DEPTH  # measured: about 5 frames per level of sin(sin(...)), the deepest


def _nest(fn: str, depth: int, inner: str) -> str:
    return f"{fn}(" * depth + inner + ")" * depth


CASES = [
    (_nest("sin", DEPTH - 2, "a"), "a", 1),
    (f"sum({_nest('sin', DEPTH - 5, 'x')})", "x", 1),
    ("(" * (DEPTH - 2) + "x'*A*x" + ")" * (DEPTH - 2), "x", 1),
    (_nest("inv", DEPTH // 2, "A"), "A", 1),
    ("-" * (DEPTH - 1) + "a", "a", 1),
    (_nest("sin", 12, "a"), "a", 2),
]


def _within_frames(work, frames: int):
    """``work()`` run with the recursion limit held at ``frames`` (the request may not raise
    it), in a fresh thread; returns what it returned, re-raises what it raised."""
    outcome: dict = {}
    real = sys.setrecursionlimit
    saved = sys.getrecursionlimit()

    def run():
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            outcome["error"] = err

    try:
        sys.setrecursionlimit = lambda limit: None
        real(frames)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit = real
        real(saved)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize(("expr", "wrt", "order"), CASES, ids=lambda c: str(c)[:24])
def test_deep_input_needs_few_frames(expr: str, wrt: str, order: int) -> None:
    def work():
        r = matdiff.derive(expr, wrt, order=order, limits={"seconds": 120})
        return r, (r.text, r.latex, r.unicode, r.differential.text)

    r, texts = _within_frames(work, STACK_FRAMES)
    assert all(texts)
    assert r.check(trials=1).verdict != "mismatch"


def test_the_frames_are_counted() -> None:
    """With a quarter of those frames the deepest case does run out: the limit is real."""
    expr, wrt, order = CASES[0]
    with pytest.raises(RecursionError):
        _within_frames(lambda: matdiff.derive(expr, wrt, order=order).text, STACK_FRAMES // 4)
