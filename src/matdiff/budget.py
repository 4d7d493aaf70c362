"""Every bound matdiff puts on the work one request may cost, in one place.

A request (``derive``, ``parse``, printing a result, evaluating or checking it) runs under the
current :class:`Limits` and a wall-clock deadline. Work that would pass a limit stops early with
a :class:`LimitError` naming the limit and how to raise it::

    matdiff.limits(seconds=30)               # from now on (in this context)
    with matdiff.limits(seconds=30): ...     # for a block
    matdiff.derive(..., limits={"seconds": 30})   # for one call
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .errors import MatdiffError, shorten

__all__ = ["Limits", "LimitError", "limits", "current", "request", "check", "check_time",
           "remaining", "shorten"]


@dataclass(frozen=True)
class Limits:
    """The bounds; each is what a legitimate input stays well inside."""

    text_length: int = 100_000      # characters of an expression or declaration
    parts: int = 10_000             # nodes of the parsed expression
    depth: int = 200                # nesting of different operations
    literal_exponent: int = 400     # |e| in a literal such as 1e400
    integer_digits: int = 600       # decimal digits of an exact number (and of a folded one)
    power: int = 100_000            # an integer exponent (A^k, x^k)
    ir_nodes: int = 50_000          # distinct nodes of a derivative
    ir_links: int = 200_000         # links from a derivative's nodes to their arguments, as
    #                                 built: what each pass over it walks (n^2 terms of n factors)
    output_length: int = 1_000_000  # characters of a printed result
    dimension: int = 1_000_000      # a declared or passed dimension size
    array_elements: int = 10_000_000  # entries of one array matdiff evaluates or builds
    seconds: float = 8.0            # wall clock for one request (under 10 s with start-up)

    def replace(self, **overrides: object) -> Limits:
        names = {f.name: f.type for f in dataclasses.fields(self)}
        for name, value in overrides.items():
            if name not in names:
                raise MatdiffError(f"unknown limit {name!r}", hint="known limits: " +
                                   ", ".join(names))
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not value > 0 or (names[name] == "int" and not
                                               isinstance(value, int)):
                raise MatdiffError(f"limit {name} must be a positive "
                                   f"{'number' if names[name] == 'float' else 'whole number'}, "
                                   f"not {value!r}")
        return dataclasses.replace(self, **overrides)


class LimitError(MatdiffError):
    """Work that would pass one of the :class:`Limits`; ``limit`` names it."""

    def __init__(self, message: str, limit: str, **kwargs):
        super().__init__(message, hint=kwargs.pop("hint", None) or _raise_hint(limit), **kwargs)
        self.limit = limit


def _raise_hint(limit: str) -> str:
    return (f"the {limit} limit is {getattr(current(), limit):,}; raise it with "
            f"matdiff.limits({limit}=...) or derive(..., limits={{'{limit}': ...}})")


_current: ContextVar[Limits] = ContextVar("matdiff_limits", default=Limits())  # noqa: B039 (frozen)
_deadline: ContextVar[float | None] = ContextVar("matdiff_deadline", default=None)
# Every IR node built during a request, held until the outermost request ends: within a
# request nodes never die, so an id() taken of one is never reused by another (passes key
# dicts by id); after it, whatever no result refers to is freed.
arena: ContextVar[list | None] = ContextVar("matdiff_arena", default=None)
# Nodes built outside any request (a compiled function planning itself later, say) are held
# here until the next outermost request begins.
OUTSIDE: list = []


def current() -> Limits:
    return _current.get()


class _Setting:
    """What ``limits(...)`` returns: already in force; as a context manager, undone at exit."""

    def __init__(self, token):
        self._token = token

    def __enter__(self) -> Limits:
        return current()

    def __exit__(self, *exc) -> None:
        _current.reset(self._token)


def limits(**overrides: object) -> Limits | _Setting:
    """With no arguments, the limits in force; with some, set them (for a ``with`` block, or
    from now on in this context)."""
    if not overrides:
        return current()
    return _Setting(_current.set(current().replace(**overrides)))


def resolve(overrides: Limits | Mapping[str, object] | None) -> Limits:
    if overrides is None:
        return current()
    if isinstance(overrides, Limits):
        return overrides
    if not isinstance(overrides, Mapping):
        raise MatdiffError(f"limits= must be a dict of limits, not {type(overrides).__name__}")
    return current().replace(**dict(overrides))


@contextmanager
def request(overrides: Limits | Mapping[str, object] | None = None) -> Iterator[Limits]:
    """One top-level request: its limits and deadline (a nested request shares the outer one's
    deadline), and room on the stack for the recursive passes within the depth limit."""
    chosen = resolve(overrides)
    token = _current.set(chosen)
    outer = _deadline.get()
    deadline_token = None
    if outer is None or overrides is not None:
        deadline = time.monotonic() + chosen.seconds
        deadline_token = _deadline.set(deadline if outer is None else min(outer, deadline))
    arena_token = None
    if arena.get() is None:
        OUTSIDE.clear()
        arena_token = arena.set([])
    recursion = sys.getrecursionlimit()
    needed = 2_000 + 60 * chosen.depth
    if recursion < needed:
        sys.setrecursionlimit(needed)
    try:
        yield chosen
    finally:
        if arena_token is not None:
            arena.reset(arena_token)
        if deadline_token is not None:
            _deadline.reset(deadline_token)
        _current.reset(token)


def check_time(doing: str) -> None:
    """Stop when the request's deadline has passed (called in the long loops)."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise LimitError(f"gave up {doing} after {current().seconds:g} s", "seconds")


def remaining() -> float:
    """Seconds left before the request's deadline (infinite outside a request)."""
    deadline = _deadline.get()
    return float("inf") if deadline is None else deadline - time.monotonic()


def check(limit: str, amount: int | float, what: str, **kwargs) -> None:
    """Refuse ``what`` when ``amount`` is over the limit named ``limit``."""
    bound = getattr(current(), limit)
    if amount > bound:
        raise LimitError(f"{what} is over the limit", limit, **kwargs)
