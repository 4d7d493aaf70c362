"""The command line: ``matdiff derive EXPR --wrt X``, ``matdiff check ...``, and ``matdiff``
alone for the Gaussian example."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from .api import CONVENTIONS, Result, derive
from .core.ir import shape_text
from .errors import MatdiffError

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70

LAYOUT = ("layout: shape(dF/dX) = shape(F) + shape(X); vectors are columns, x' is a row")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command is None:
            return _example()
        return _derive(args)
    except MatdiffError as err:
        print(f"matdiff: error: {err}", file=sys.stderr)
        pointer = err.pointer()
        if pointer:
            print(pointer, file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (matdiff ... | head): nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter quiet at exit
        return 0
    except Exception as err:  # a bug: say so in one line, keep the traceback for debugging
        if os.environ.get("MATDIFF_DEBUG"):
            traceback.print_exc()
        print(f"matdiff: internal error ({type(err).__name__}: {err}); please report it with "
              "the command line (MATDIFF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matdiff",
        description="Derivatives of matrix expressions, in matrix notation, checked "
                    "numerically. With no command: the Gaussian density example.")
    commands = parser.add_subparsers(dest="command")
    for name, text in (("derive", "differentiate an expression"),
                       ("check", "differentiate and verify against finite differences")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("expr", help="the expression, e.g. \"x'*A*x\"")
        sub.add_argument("--wrt", required=True,
                         help="the variable to differentiate by (x,S: the mixed derivative)")
        sub.add_argument("--direction", default=None,
                         help="a direction V: the derivative applied to V (for --order 2 the "
                              "Hessian-vector product)")
        sub.add_argument("--declare", default=None,
                         help="types and properties, e.g. \"S: symmetric posdef matrix(k,k); "
                              "x: vector(k)\" (default: a-g scalars, h-z vectors, A-Z "
                              "matrices)")
        sub.add_argument("--order", type=int, default=1,
                         help="1: gradient/Jacobian (default), 2: Hessian, 3...: higher")
        sub.add_argument("--symmetric", default="sym", choices=CONVENTIONS,
                         help="convention for a symmetric wrt (default sym = (G + G')/2)")
        sub.add_argument("--format", default="text", choices=("text", "latex", "unicode", "json"))
        sub.add_argument("--latex", action="store_true",
                         help="read EXPR as LaTeX (detected anyway from a backslash or braces)")
        sub.add_argument("--check", action="store_true", default=name == "check",
                         help="verify numerically against finite differences")
    return parser


def _derive(args: argparse.Namespace) -> int:
    wrt = tuple(w.strip() for w in args.wrt.split(",")) if "," in args.wrt else args.wrt
    r = derive(args.expr, wrt, declare=args.declare, order=args.order,
               symmetric=args.symmetric, direction=args.direction,
               syntax="latex" if args.latex else "auto")
    error = r.check() if args.check else None
    if args.format == "json":
        print(json.dumps(_as_json(r, error), indent=2))
    else:
        print(_report(r, args.format, error))
    return 0 if error is None or error < 1e-6 else 1


def _example() -> int:
    print("The multivariate Gaussian density, with S a covariance matrix:\n")
    print(f"f = {derive(GAUSSIAN, 'x', declare=GAUSSIAN_DECLARE).function_text}")
    print(f"    declared: {GAUSSIAN_DECLARE}\n")
    for wrt in ("S", "m", "x"):
        r = derive(GAUSSIAN, wrt, declare=GAUSSIAN_DECLARE)
        print(_report(r, "text", r.check(), show_function=False))
        print()
    print("Try: matdiff derive \"x'*A*x\" --wrt x --check     (matdiff --help for more)")
    return 0


def _label(r: Result) -> str:
    f = "f" if not r.function.ndim else "F"
    if len(set(r.wrts)) > 1:
        return f"d{r.order}{f}/" + "".join(f"d{w}" for w in r.wrts)
    label = f"d{f}/d{r.wrt}" if r.order == 1 else f"d{r.order}{f}/d{r.wrts[0]}{r.order}"
    return label if r.direction is None else f"{label} applied to {r.direction}"


def _differential_label(r: Result, fmt: str) -> str:
    """d(inv(X)), d2(log(det(X))): the map's name, with the function written out if short."""
    function = r.function_in("text")
    inner = function if len(function) <= 40 else ("f" if not r.function.ndim else "F")
    return f"d{r.order if r.order > 1 else ''}({inner})"


def _report(r: Result, fmt: str, error: float | None, show_function: bool = True) -> str:
    body = r.in_style(fmt)
    short = r.abbreviated("f", fmt)
    lines = []
    if show_function:
        lines.append(f"f = {r.function_in(fmt)}")
    if r.shown_as_differential:
        # a linear map shown by what it does to dX, then its other views
        lines.append(f"{_differential_label(r, fmt)} = {body}")
        vec = getattr(r, "vec", None)
        if vec is not None:
            lines.append(f"  vec form: {vec.in_style(fmt) if hasattr(vec, 'in_style') else vec}")
        lines.append(f"  index form: {r.index}")
    else:
        lines.append(f"{_label(r)} = {short or body}")
        if show_function and r.direction is None:
            differential = r.differential_abbreviated("f", fmt) or r.differential.in_style(fmt)
            lines.append(f"  differential: {_differential_label(r, fmt)} = {differential}")
    lines.append(f"  shape: {shape_text(r.shape)}   ({LAYOUT})")
    if show_function:
        lines.append(f"  declared: {r.declared}")
    if r.convention_note:
        lines.append(f"  {r.convention_note}")
    for note in r.notes:
        lines.append(f"  note: {note}")
    if error is not None:
        verdict = "ok" if error < 1e-6 else "MISMATCH"
        lines.append(f"  check: max relative error {error:.1e} against central finite "
                     f"differences at 3 random points: {verdict}")
    return "\n".join(lines)


def _as_json(r: Result, error: float | None) -> dict:
    return {"expr": r.expr, "wrt": r.wrt, "order": r.order, "function": r.function_text,
            "text": r.text, "text_with_f": r.abbreviated("f"), "latex": r.latex,
            "unicode": r.unicode, "shape": list(r.shape), "convention": r.convention,
            "convention_note": r.convention_note, "declared": r.declared,
            "check_max_relative_error": error,
            "differential": r.differential.text, "shown_as_differential": r.shown_as_differential,
            "index": r.index if r.shown_as_differential else None, "notes": list(r.notes)}


if __name__ == "__main__":
    sys.exit(main())
