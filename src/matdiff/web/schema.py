"""What a request to the JSON API may contain: each endpoint's fields, their types and bounds.

A request is checked here, in the server process, before any worker sees it: unknown fields,
wrong types, out-of-range values and over-long texts are a :class:`RequestError` with a status
and a one-line message naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..api import CONVENTIONS, LAYOUTS

SYNTAXES = ("auto", "text", "latex")
BACKENDS = ("numpy", "jax", "torch")
MAX_ORDER = 4
MAX_WRTS = 4
MAX_NAME = 100
MAX_ENTRYWISE_SIZE = 4


@dataclass(frozen=True)
class Settings:
    """The server's bounds; each is what the page itself stays well inside."""

    body_bytes: int = 65_536          # a request body
    expression_chars: int = 4_000     # the expression, and separately the declarations
    seconds: float = 4.0              # matdiff's time budget for one request, in the worker
    grace: float = 2.0                # past the budget by this much, the worker is killed
    busy_seconds: float = 1.0         # the least budget when requests queue (shared out)
    import_seconds: float = 60.0      # more for /api/source: a worker's first JAX or PyTorch
    queue_seconds: float = 60.0       # waiting for a free worker, then 503
    cache_entries: int = 512          # answers kept for requests asked again (a link, a
    cache_bytes: int = 32 * 2**20     #   toggle back): the server's memory stays bounded
    tasks_per_worker: int = 500       # then the worker is replaced (memory stays bounded)
    worker_rss_mib: int = 1_500       # a worker above this after a request is replaced


def error(kind: str, message: str, field: str | None = None, column: int | None = None,
          hint: str | None = None, **extra: object) -> dict:
    """The body of every error answer: ``kind`` is request, input, limit, timeout, busy or
    internal; ``column`` (1-based) points into ``field`` (expr or declare) where known."""
    return {"error": {"kind": kind, "message": message, "field": field, "column": column,
                      "hint": hint, **extra}}


class RequestError(Exception):
    """A request that is not one the API takes: ``status`` (4xx) and a one-line message."""

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


def decoded(body: bytes) -> dict:
    """The request body as a JSON object (strict: no NaN, no duplicate keys)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(f"the request body is not UTF-8 (byte {err.start})") from None
    if not text.strip():
        raise RequestError("the request body is empty: send a JSON object such as "
                           "{\"expr\": \"x'*A*x\", \"wrt\": \"x\"}")
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except json.JSONDecodeError as err:
        raise RequestError(f"the request body is not JSON: {err.msg} at line {err.lineno} "
                           f"column {err.colno}") from None
    except RecursionError:
        raise RequestError("the request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(f"the request body must be a JSON object, not {_kind(data)}")
    return data


def _no_constant(name: str):
    raise RequestError(f"the request body has {name}, which JSON does not allow")


def _unique(pairs: list[tuple[str, object]]) -> dict:
    data = {}
    for key, value in pairs:
        if key in data:
            raise RequestError(f"field {key!r} appears twice in the request")
        data[key] = value
    return data


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


# --- field checks: each returns the value to use or raises RequestError ----------------------

Check = Callable[[str, object, Settings], object]


def text(limit: str) -> Check:
    def check(name: str, value: object, settings: Settings) -> str:
        if not isinstance(value, str):
            raise RequestError(f"field {name!r} must be a string, not {_kind(value)}",
                               field=name)
        bound = getattr(settings, limit)
        if len(value) > bound:
            raise RequestError(f"field {name!r} is {len(value):,} characters long; this server "
                               f"takes at most {bound:,}", status=413, field=name)
        if not value.strip() and name == "expr":
            raise RequestError("field 'expr' is empty: type an expression such as x'*A*x",
                               field=name)
        return value
    return check


def optional(check: Check) -> Check:
    def maybe(name: str, value: object, settings: Settings) -> object:
        return None if value is None or value == "" else check(name, value, settings)
    return maybe


def name_or_names(name: str, value: object, settings: Settings) -> str | list[str]:
    names = value if isinstance(value, list) else [value]
    if not names or len(names) > MAX_WRTS or not all(
            isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names):
        raise RequestError(f"field {name!r} must be a variable name or a list of 1 to "
                           f"{MAX_WRTS} names, not {_shown(value)}", field=name)
    return value


def variable_name(name: str, value: object, settings: Settings) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise RequestError(f"field {name!r} must be a variable name, not {_shown(value)}",
                           field=name)
    return value


def whole(low: int, high: int) -> Check:
    def check(name: str, value: object, settings: Settings) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RequestError(f"field {name!r} must be a whole number from {low} to {high}, "
                               f"not {_shown(value)}", field=name)
        return value
    return check


def one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: object, settings: Settings) -> str:
        if value not in choices or not isinstance(value, str):
            raise RequestError(f"field {name!r} must be one of {', '.join(choices)}, not "
                               f"{_shown(value)}", field=name)
        return value
    return check


def boolean(name: str, value: object, settings: Settings) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"field {name!r} must be true or false, not {_shown(value)}",
                           field=name)
    return value


def entrywise(name: str, value: object, settings: Settings) -> dict | None:
    """false, true (size 2, seed 0) or {"size": 1..4, "seed": n}."""
    if value is False:
        return None
    if value is True:
        return {"size": 2, "seed": 0}
    if not isinstance(value, dict):
        raise RequestError(f"field {name!r} must be true, false or {{\"size\": n, \"seed\": "
                           f"s}}, not {_shown(value)}", field=name)
    unknown = set(value) - {"size", "seed"}
    if unknown:
        raise RequestError(f"field {name!r} has unknown key {sorted(unknown)[0]!r} (it takes "
                           "size and seed)", field=name)
    size = whole(1, MAX_ENTRYWISE_SIZE)(f"{name}.size", value.get("size", 2), settings)
    seed = whole(0, 2**31 - 1)(f"{name}.seed", value.get("seed", 0), settings)
    return {"size": size, "seed": seed}


def _shown(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    shown = json.dumps(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


# --- the endpoints ---------------------------------------------------------------------------

REQUIRED = object()
EXPRESSION: dict[str, tuple[Check, object]] = {
    "expr": (text("expression_chars"), REQUIRED),
    "declare": (optional(text("expression_chars")), None),
    "syntax": (one_of(SYNTAXES), "auto"),
}
DERIVATION = {
    **EXPRESSION,
    "wrt": (name_or_names, REQUIRED),
    "order": (whole(1, MAX_ORDER), 1),
    "symmetric": (one_of(CONVENTIONS), "sym"),
    "layout": (one_of(LAYOUTS), "shape"),
    "direction": (optional(variable_name), None),
}
ENDPOINTS: dict[str, dict[str, tuple[Check, object]]] = {
    "variables": EXPRESSION,
    "derive": {**DERIVATION, "check": (boolean, True), "steps": (boolean, False),
               "entrywise": (entrywise, None)},
    "source": {**DERIVATION, "backend": (one_of(BACKENDS), "numpy")},
}


def validated(endpoint: str, data: dict, settings: Settings) -> dict:
    """The request's fields with their defaults filled in, or a RequestError."""
    fields = ENDPOINTS[endpoint]
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise RequestError(f"unknown field {_shown(unknown[0])} in a /api/{endpoint} request "
                           f"(it takes {', '.join(fields)})", field=unknown[0])
    clean = {}
    for name, (check, default) in fields.items():
        if name not in data:
            if default is REQUIRED:
                raise RequestError(f"field {name!r} is missing from the /api/{endpoint} "
                                   "request", field=name)
            clean[name] = default
        else:
            clean[name] = check(name, data[name], settings)
    return clean
