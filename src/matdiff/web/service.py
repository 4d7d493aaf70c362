"""The work behind each endpoint, as it runs in a worker process: validated fields in, a
status and a JSON-able body out. Nothing here knows HTTP beyond the status numbers.

Every answer is data matdiff computed; an input matdiff refuses is a 422 with its one-line
message and, where it has one, the column and which field it is in (``expr`` or ``declare``).
"""

from __future__ import annotations

import contextlib
import importlib
import resource
import traceback

from .. import budget
from ..api import Result, derive
from ..budget import LimitError
from ..core.ir import Expr, shape_text
from ..errors import MatdiffError, printable, shorten
from ..notation.render import LATEX, UNICODE, render
from ..notation.tree import Sym
from ..syntax.parse import CONSTANTS, Name, is_latex, parse_text, parse_typed, post_order
from ..syntax.types import KIND_WORDS, PROPERTIES, Decl, default_rank, parse_declarations
from .schema import error

SHOWN_PROPERTIES = ("symmetric", "posdef", "diagonal")  # the table's checkboxes
SHORT_FUNCTION = 40  # characters: a shorter function is written out in d(...) labels
RESERVE_S = 0.5  # of a request's time, kept for what follows the check and entrywise table
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def variables(p: dict) -> dict:
    """The variables the expression uses, as its defaults and declarations type them. Where
    the text parses but does not type (``k`` a vector by its letter in ``(2*pi)^(-k/2)``),
    its names with their default kinds, and the error as ``type_error``: the table that
    fixes it can still be shown."""
    try:
        _, found = parse_typed(p["expr"], p["declare"], p["syntax"])
        type_error = None
    except LimitError:
        raise
    except MatdiffError as err:
        if _syntax(p) != "text":
            raise
        found = _untyped(parse_text(p["expr"]), parse_declarations(p["declare"]))
        if not found:
            raise
        type_error = failure("input", err, p)["error"]
    return {"syntax": _syntax(p), "variables": [_row(d) for d in found.values()],
            "wrt": _first_wrt(found), "type_error": type_error}


def _row(d: Decl) -> dict:
    return {"name": d.name, "kind": KIND_WORDS[len(d.shape)],
            "dims": ["" if n is None else str(n) for n in d.shape],
            "props": [q for q in PROPERTIES if q in d.props]}


def _untyped(root, decls: dict[str, Decl]) -> dict[str, Decl]:
    """The names of a parsed tree in reading order, declared or by their default letter."""
    names = sorted((node for node in post_order(root) if isinstance(node, Name)
                    and node.name not in CONSTANTS), key=lambda node: node.pos)
    return {node.name: decls.get(node.name) or
            Decl(node.name, (None,) * default_rank(node.name)) for node in names}


def _syntax(p: dict) -> str:
    if p["syntax"] != "auto":
        return p["syntax"]
    return "latex" if is_latex(p["expr"]) else "text"


def _first_wrt(found: dict) -> str | None:
    """What to differentiate by when nothing is chosen: the first array, else the first name."""
    arrays = [name for name, d in found.items() if d.shape]
    return (arrays or list(found) or [None])[0]


def _derived(p: dict) -> Result:
    wrt = tuple(p["wrt"]) if isinstance(p["wrt"], list) else p["wrt"]
    return derive(p["expr"], wrt, declare=p["declare"], order=p["order"],
                  symmetric=p["symmetric"], direction=p["direction"], layout=p["layout"],
                  syntax=p["syntax"])


def derivation(p: dict) -> dict:
    """``Result.to_dict`` (the fields of ``--format json``) and the page's other views. The
    numerical check and the entrywise table come last, each within the time left less a
    reserve: past it they say why they are missing, and the derivative is still shown."""
    r = _derived(p)
    differential = r.differential
    views = {
        "syntax": _syntax(p),
        "function_latex": r.function_in("latex"), "function_unicode": r.function_in("unicode"),
        "latex_with_f": r.abbreviated("f", "latex"),
        "unicode_with_f": r.abbreviated("f", "unicode"),
        "label_latex": _label(r), "label_unicode": _label(r, unicode=True),
        "differential_label_latex": _differential_label(r),
        "differential_label_unicode": _differential_label(r, unicode=True),
        "differential_latex": r.differential_abbreviated("f", "latex") or differential.latex,
        "differential_unicode": (r.differential_abbreviated("f", "unicode") or
                                 differential.unicode),
        "vec_lead_latex": _vec_lead(r, latex=True), "vec_lead_unicode": _vec_lead(r),
        "vec_latex": r.vec.latex if r.vec else None,
        "vec_unicode": r.vec.unicode if r.vec else None,
        "vec_shape": shape_text(r.vec.shape) if r.vec else None,
        "shape_text": shape_text(r.shape), "layout_note": r.layout_note,
        "variables": [_row(d) for d in r.variables.values()],
    }
    views.update(_steps(r, p["steps"]))
    verdict, views["check_error"] = _within_reserve(r.check) if p["check"] else (None, None)
    views["check_resolution"] = None if verdict is None else float(verdict.resolution)
    body = r.to_dict(verdict)
    body.update(views)
    if p["entrywise"] is None:
        body.update(entrywise=None, entrywise_reason="not asked for (\"entrywise\": true)")
    else:
        table, reason = _within_reserve(lambda: r.entrywise(p["entrywise"]["size"],
                                                            p["entrywise"]["seed"]).to_dict())
        body.update(entrywise=table, entrywise_reason=reason)
    return body


def _within_reserve(work):
    """(work(), None), or (None, why) where it would pass the time left less RESERVE_S."""
    seconds = budget.remaining() - RESERVE_S
    if seconds <= 0:
        return None, "not done: no time was left for it"
    try:
        with budget.request({"seconds": seconds}):
            return work(), None
    except LimitError as err:
        return None, f"not done: {err.message}"
    except MatdiffError as err:  # refused for this derivative (a directional one, say)
        return None, err.message


def _steps(r: Result, wanted: bool) -> dict:
    if not wanted:
        return {"steps": None, "steps_reason": "not asked for (\"steps\": true)"}
    # no steps for this kind of derivative, or no time left: the rest still shows
    steps, reason = _within_reserve(lambda: r.steps.to_dict())
    return {"steps": steps, "steps_reason": reason}


def _name(name: str) -> str:
    return render(Sym(name), LATEX)


def _label(r: Result, unicode: bool = False) -> str:
    """∂f/∂S, ∂²f/∂x², ∂²f/∂x∂S in LaTeX or Unicode (the map's name d(...) where that is
    what is shown)."""
    if r.shown_as_differential and r.layout == "shape":
        return _differential_label(r, unicode)
    f = "f" if not r.function.ndim else "F"
    name = (lambda w: render(Sym(w), UNICODE)) if unicode else _name
    k = r.order if r.order > 1 else None
    if unicode:
        power = str(k).translate(SUPERSCRIPTS) if k else ""
        below = "".join(f"∂{name(w)}" for w in r.wrts) if len(set(r.wrts)) > 1 else \
            f"∂{name(r.wrts[0])}{power}"
        label = f"∂{power}{f}/{below}"
        return label if r.direction is None else f"{label}[{name(r.direction)}]"
    power = f"^{{{k}}}" if k else ""
    below = r"\,".join(f"\\partial {name(w)}" for w in r.wrts) if len(set(r.wrts)) > 1 \
        else f"\\partial {name(r.wrts[0])}{power}"
    label = f"\\frac{{\\partial{power} {f}}}{{{below}}}"
    return label if r.direction is None else f"{label}\\left[{name(r.direction)}\\right]"


def _differential_label(r: Result, unicode: bool = False) -> str:
    """d(inv(X)), d²(f): the differential's name, with the function written out if short."""
    short = len(r.function_text) <= SHORT_FUNCTION
    inner = r.function_in("unicode" if unicode else "latex") if short else \
        ("f" if not r.function.ndim else "F")
    if unicode:
        return f"d{str(r.order).translate(SUPERSCRIPTS) if r.order > 1 else ''}({inner})"
    power = f"^{{{r.order}}}" if r.order > 1 else ""
    return f"\\mathrm{{d}}{power}\\left({inner}\\right)"


def _vec_lead(r: Result, latex: bool = False) -> str | None:
    """What the vec form's matrix means: df = J d vec(X), or d²f = vec(dX)' H vec(dX)."""
    if r.vec is None:
        return None
    x = _name(r.wrts[0]) if latex else render(Sym(r.wrts[0]), UNICODE)
    if latex:
        vec_dx = f"\\operatorname{{vec}}(\\mathrm{{d}}{x})"
        if r.order == 2:
            return f"\\mathrm{{d}}^{{2}}f = {vec_dx}^{{\\top}} H\\, {vec_dx},\\quad H"
        left = "\\mathrm{d}f" if not r.function.ndim else "\\mathrm{d}\\operatorname{vec}(F)"
        return f"{left} = J\\, {vec_dx},\\quad J"
    if r.order == 2:
        return f"d²f = vec(d{x})ᵀ H vec(d{x}), H"
    return f"{'df' if not r.function.ndim else 'd vec(F)'} = J vec(d{x}), J"


def source(p: dict) -> dict:
    r = _derived(p)
    return {"backend": p["backend"], "source": r.source(p["backend"]),
            "filename": f"{r._name}_{p['backend']}.py"}


TASKS = {"variables": variables, "derive": derivation, "source": source}


def answer(task: str, p: dict) -> tuple[int, dict]:
    """(status, body) for one validated request: 200, 422 for input matdiff refuses or work
    past a limit, 500 for a bug (one line, never a traceback)."""
    if task == "source":
        _import(p["backend"])
    try:
        with budget.request():
            return 200, TASKS[task](p)
    except LimitError as err:
        # the hint for Python callers (raise it with matdiff.limits) does not apply here
        err.hint = f"the {err.limit} limit of this server; simplify the expression"
        return 422, failure("limit", err, p, limit=err.limit)
    except MatdiffError as err:
        return 422, failure("input", err, p)
    except (RecursionError, MemoryError) as err:
        return 422, error("limit", f"the expression is too large to work on here "
                          f"({type(err).__name__})", hint="shorten it")
    except Exception as err:  # a bug in matdiff: say what, keep it on one line
        where = traceback.extract_tb(err.__traceback__)[-1]
        return 500, error("internal", shorten(printable(
            f"internal error, please report: {type(err).__name__}: {err} (at "
            f"{where.name}:{where.lineno})"), 400))


def _import(backend: str) -> None:
    """Import JAX or PyTorch before the time budget starts: their first import alone can take
    longer than a request may (the pool allows for it, Settings.import_seconds)."""
    with contextlib.suppress(ImportError):  # source() then says what to install
        importlib.import_module(backend)


def failure(kind: str, err: MatdiffError, p: dict, **extra) -> dict:
    """The error body: the message, and the column within the field it points into."""
    field = next((name for name in ("expr", "declare")
                  if err.source is not None and err.source == p.get(name)), None)
    if field is None and err.column is not None and err.source is None:
        field = "expr"  # positions without a source are the expression's
    return error(kind, str(err), field, err.column if field else None, err.hint, **extra)


def memory() -> dict:
    """This process's resident set (MiB) and how many IR nodes are interned now."""
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rss_mib": round(rss, 1), "interned_nodes": len(Expr._interned)}
