"""The command line: ``matdiff derive EXPR --wrt X``, ``matdiff check ...``, and ``matdiff``
alone for the Gaussian example."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from . import budget
from .api import CONVENTIONS, LAYOUTS, Result, derive
from .core.ir import shape_text
from .errors import MatdiffError, printable, shorten

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

COLUMNS = "vectors are columns, x' is a row"


def main(argv: list[str] | None = None) -> int:
    _tolerate_any_encoding()
    argv = _expressions_protected(sys.argv[1:] if argv is None else list(argv))
    args = _parser().parse_args(argv)
    if getattr(args, "expr", None) is not None:
        args.expr = args.expr.removeprefix(_PROTECT)
    try:
        if args.command is None:
            return _example()
        if args.command == "solve":
            from .solve.report import run as solve
            return solve(args.expr, args.wrt, args.declare, args.constraint, args.format,
                         args.seed)
        if args.command == "serve":
            from .web.serve import serve  # the web stack loads only for this command
            return serve(args.host, args.port, args.workers, args.seconds)
        if args.command == "em":
            from .em.demo import run  # the estimator stack loads only for this command
            return run(args.out, args.seed)
        with budget.request():  # one deadline for the whole report, not one per part of it
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
        shown = shorten(printable(" ".join(argv)), 300)
        print(f"matdiff: internal error, please report: {type(err).__name__}: "
              f"{shorten(printable(str(err)), 200)}; input: {shown} (MATDIFF_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return EXIT_INTERNAL


_PROTECT = " "  # argparse takes "-x'*x" for an option; a leading space (ignored by the
#                 grammar, removed again after parsing) keeps it an argument
def _expressions_protected(argv: list[str]) -> list[str]:
    """An expression may start with a minus: protect every argument of a command that begins
    with a single '-' (options are spelled --name; -h is help)."""
    if not argv or argv[0] not in ("derive", "check", "solve"):
        return argv
    return argv[:1] + [_PROTECT + arg if arg.startswith("-") and not arg.startswith("--")
                       and arg != "-h" else arg for arg in argv[1:]]


def _tolerate_any_encoding() -> None:
    """Print on terminals of any encoding: what the encoding lacks is escaped, not fatal."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and not _can_encode(stream, "×⊙ᵀ"):
            stream.reconfigure(errors="backslashreplace")


def _can_encode(stream, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


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
        sub.add_argument("--layout", default="shape", choices=LAYOUTS,
                         help="shape (default): shape(F) + shape(X); numerator: rows follow F, "
                              "columns X; denominator: the transpose")
        sub.add_argument("--vec", action="store_true",
                         help="also show the vec form d vec(F) = J d vec(X) (shown anyway for "
                              "results with three or more axes)")
        sub.add_argument("--format", default="text", choices=("text", "latex", "unicode", "json"))
        sub.add_argument("--latex", action="store_true",
                         help="read EXPR as LaTeX (detected anyway from a backslash or braces)")
        sub.add_argument("--check", action="store_true", default=name == "check",
                         help="verify numerically against finite differences")
        sub.add_argument("--entrywise", nargs="?", type=int, const=3, default=None,
                         metavar="SIZE",
                         help="also show the derivative entry by entry: its index form and, on "
                              "a random instance of size SIZE (default 3), finite differences "
                              "of each partial derivative beside the formula's entries")
        sub.add_argument("--steps", action="store_true",
                         help="also show the derivation step by step (the differential by "
                              "the rules, its canonical form, the identification)")
        sub.add_argument("--emit", choices=("numpy", "jax", "torch"), default=None,
                         help="print a self-contained Python function computing the "
                              "derivative (with a check_gradient helper for gradients)")
    solve = commands.add_parser("solve", help="solve the gradient for zero: the stationary "
                                "point in closed form, with the steps",
                                description="the stationary point of a scalar expression in "
                                            "closed form, the steps, and a numerical check "
                                            "(a numeric minimiser where no closed form is found)")
    solve.add_argument("expr", help="a scalar expression, e.g. \"norm2(X*w - y)^2\"")
    solve.add_argument("--wrt", required=True, help="the unknown(s): w, or m,S (jointly)")
    solve.add_argument("--declare", default=None, help="types and properties, as for derive")
    solve.add_argument("--constraint", default=None,
                       help="simplex (the unknown sums to 1) or an equation such as "
                            "\"sum(w) = 1\", met by a Lagrange multiplier")
    solve.add_argument("--format", default="text", choices=("text", "latex", "unicode"))
    solve.add_argument("--seed", type=int, default=0, help="the random data of the check")
    serve = commands.add_parser("serve", help="the local web app (pip install 'matdiff[web]')",
                                description="a local web app: type an expression, read its "
                                            "derivatives, checks and code")
    serve.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    serve.add_argument("--host", default="127.0.0.1",
                       help="default 127.0.0.1 (this machine only); anything else is reachable "
                            "from other machines")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes computing the results (default: the CPUs, at "
                            "most 4)")
    serve.add_argument("--seconds", type=float, default=None,
                       help="time limit of one request (default 4; raise it for large "
                            "expressions)")
    em = commands.add_parser("em", help="Gaussian mixtures by EM with derived updates",
                             description="Gaussian mixtures fitted by EM")
    em_commands = em.add_subparsers(dest="em_command", required=True)
    demo = em_commands.add_parser("demo", help="derive the M-step, fit a 2-D mixture, plot it",
                                  description="derive and print the M-step updates, fit a 2-D "
                                              "mixture with a progress bar, save a plot")
    demo.add_argument("--out", default="em-demo.png",
                      help="where to save the plot (needs matplotlib; default em-demo.png)")
    demo.add_argument("--no-plot", dest="out", action="store_const", const=None)
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _derive(args: argparse.Namespace) -> int:
    wrt = tuple(w.strip() for w in args.wrt.split(",")) if "," in args.wrt else args.wrt
    inner = _differential_of(args)
    if inner is not None:  # d(u): the differential of u is what is asked for
        args.expr, args.wrt = inner, wrt
    r = derive(args.expr, wrt, declare=args.declare, order=args.order,
               symmetric=args.symmetric, direction=args.direction, layout=args.layout,
               syntax="latex" if args.latex else "auto")
    error = r.check() if args.check else None
    if args.emit:
        print(r.source(args.emit))
        return 0 if error is None or error < 1e-6 else 1
    entries = r.entrywise(args.entrywise) if args.entrywise is not None else None
    if args.format == "json":
        data = r.to_dict(error)
        if args.steps:
            data["steps"] = r.steps.to_dict()
        if entries is not None:
            data["entrywise"] = entries.to_dict()
        print(json.dumps(data, indent=2))
    elif inner is not None:
        print(_differential_report(r, args.format, error))
    else:
        print(_report(r, args.format, error, show_vec=args.vec))
    if args.steps and args.format != "json":
        steps = r.steps
        print("\nsteps:")
        print(steps.latex if args.format == "latex" else steps.text)
    if entries is not None and args.format != "json":
        print(entries.latex if args.format == "latex" else entries.text)
    return 1 if error is not None and error.verdict == "mismatch" else 0


def _differential_of(args: argparse.Namespace) -> str | None:
    """u, where the expression is d(u) as a whole (text syntax)."""
    from .syntax.parse import DIFFERENTIAL, Call, is_latex, parse_text, to_text
    if args.latex or is_latex(args.expr) or args.order != 1 or args.direction:
        return None
    root = parse_text(args.expr)
    if isinstance(root, Call) and root.fn == DIFFERENTIAL:
        return to_text(root.args[0])
    return None


def _differential_report(r: Result, fmt: str, error: float | None) -> str:
    lines = [f"d({r.function_in(fmt)}) = {r.differential.in_style(fmt)}",
             f"  declared: {r.declarations}; d{r.wrt} is a direction in {r.wrt}'s space"]
    if error is not None:
        lines.append(f"  check of the derivative against central finite differences: "
                     f"{error.verdict}")
    return "\n".join(lines)


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


def _report(r: Result, fmt: str, error: float | None, show_function: bool = True,
            show_vec: bool = False) -> str:
    body = r.in_style(fmt)
    short = r.abbreviated("f", fmt)
    lines = []
    if show_function:
        lines.append(f"f = {r.function_in(fmt)}")
    if r.shown_as_differential and r.layout == "shape":
        # a linear map shown by what it does to dX, then its other views
        lines.append(f"{_differential_label(r, fmt)} = {body}")
        lines.append(_vec_line(r, fmt))
        lines.append(_index_line(r))
    else:
        lines.append(f"{_label(r)} = {short or body}")
        if show_function and r.direction is None:
            differential = r.differential_abbreviated("f", fmt) or r.differential.in_style(fmt)
            lines.append(f"  differential: {_differential_label(r, fmt)} = {differential}")
        if show_vec:
            lines.append(_vec_line(r, fmt))
    shape = shape_text(r.shape)
    if not _can_encode(sys.stdout, shape):
        shape = shape.replace("×", "x")
    lines.append(f"  shape: {shape}   ({r.layout_note}; {COLUMNS})")
    if show_function:
        lines.append(f"  declared: {r.declarations}")
    if r.convention_note:
        lines.append(f"  {r.convention_note}")
    for note in r.notes:
        lines.append(f"  note: {note}")
    if error is not None:
        verdict = {"ok": "ok", "mismatch": "MISMATCH",
                   "inconclusive": "inconclusive (the differences could not tell at the "
                                   "points tried)"}[error.verdict]
        # the error is what lies beyond the differences' own rounding: 0 means within it
        agreement = (f"agrees to within their own resolution {error.resolution:.0e}"
                     if error == 0 else f"max relative error {error:.1e} (their own "
                     f"resolution {error.resolution:.0e})")
        lines.append(f"  check against central finite differences at random points: "
                     f"{agreement}: {verdict}")
    return "\n".join(lines)


def _index_line(r: Result) -> str:
    try:
        return f"  index form: {r.index}"
    except MatdiffError as err:  # merged axes (kron, vec) have no index names yet
        return f"  index form: none ({err.message})"


def _vec_line(r: Result, fmt: str) -> str:
    f = "f" if not r.function.ndim else "F"
    if r.vec is None:
        return f"  vec form: none ({r.vec_reason})"
    form = r.vec.in_style(fmt)
    if r.order == 2:
        return f"  vec form: d2{f} = vec(d{r.wrt})'*H*vec(d{r.wrt}), H = {form}   " \
               f"({shape_text(r.vec.shape)})"
    left = "df" if not r.function.ndim else "d vec(F)"
    return f"  vec form: {left} = J d vec({r.wrt}), J = {form}   ({shape_text(r.vec.shape)})"


if __name__ == "__main__":
    sys.exit(main())
