"""The public surface: ``derive`` runs the pipeline and returns a :class:`Result`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numpy as np

from .core import ir
from .core.differentiate import NotDifferentiable, derivative
from .core.ir import PRIMITIVES, Dim, Expr
from .core.simplify import simplify
from .errors import MatdiffError
from .notation.differential import apply_to
from .notation.differential import direction as direction_variable
from .notation.factor import abbreviate
from .notation.names import with_names
from .notation.raising import raise_expr, raise_index_form
from .notation.render import LATEX, TEXT, UNICODE, render
from .notation.tree import IndexForm
from .numeric.check import verify, verify_directional
from .numeric.codegen import compile_numpy
from .syntax.lower import lower
from .syntax.parse import parse_typed
from .syntax.types import Decl, declaration_text, parse_declarations, with_stated_sizes

CONVENTIONS = ("sym", "full", "cookbook")
STRUCTURE = frozenset({"symmetric", "posdef", "diagonal"})
MAX_IR_NODES = 50_000
STYLES = {"text": TEXT, "latex": LATEX, "unicode": UNICODE}

CONVENTION_NOTES = {
    "sym": "{x} is symmetric: this is the gradient on symmetric matrices, sym(G) = (G + G')/2 "
           "of the gradient G that treats all entries of {x} as independent",
    "full": "{x} is {structure}, but this is G, the gradient that treats all entries of {x} "
            "as independent (the default gives the gradient on {structure} matrices)",
    "cookbook": "{x} is symmetric: this is the Matrix Cookbook's G + G' - diag(diag(G)), the "
                "derivatives with respect to each free entry (X_ij and X_ji moved together)",
    "diagonal": "{x} is diagonal: this is the gradient on diagonal matrices, the diagonal of G",
}


@dataclass
class Form:
    """An expression matdiff derived, in the input language: ``text`` reads back with the
    same declarations (and ``evaluate`` gives its value), ``latex``, ``unicode``, ``numpy()``."""

    expr: Expr                      # its IR
    variables: dict[str, Decl]      # the expression's variables and the directions
    reading_order: dict[str, int]
    quantities: tuple[Expr, ...] = ()  # whose parts of ``wrts`` may be named (names.py)
    wrts: tuple[str, ...] = ()
    symmetric_of: Expr | None = None   # G, where expr is sym(G) = (G + G')/2

    @cached_property
    def notation(self):
        return raise_expr(self.expr, self.reading_order)

    @cached_property
    def named_notation(self):
        """The notation with names for repeated parts, where they shorten it (names.py)."""
        taken = set(self.variables) | {"f", "pi", "eye"} | {
            d for v in self.variables.values() for d in v.shape if isinstance(d, str)}
        return with_names(self.expr, list(self.quantities), self.wrts,
                          lambda e, shapes: raise_expr(e, self.reading_order, shapes), taken,
                          self.symmetric_of)

    @property
    def plain(self) -> str:
        """``text`` without ``where`` bindings: every part written out."""
        return self.in_style("text", plain=True)

    @property
    def text(self) -> str:
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")

    def in_style(self, style: str, plain: bool = False) -> str:
        text = render(self.notation if plain else self.named_notation, STYLES[style])
        if style != "text" or isinstance(self.notation, IndexForm):
            return text
        return with_stated_sizes(text, self.variables, self.expr.shape)

    def numpy(self) -> Callable[..., np.ndarray]:
        """callable(**arrays) -> the value (directions are passed like variables)."""
        return compile_numpy(self.expr, {n: d.shape for n, d in self.variables.items()})


@dataclass
class Result:
    """A derivative: ``text``/``latex``/``unicode`` notation, ``shape``, ``numpy()``,
    ``check()``."""

    expr: str
    wrt: str
    order: int
    convention: str | None          # how a symmetric or diagonal wrt was treated, else None
    derivative: Expr                # the IR of the derivative
    function: Expr                  # the IR of the expression, as the checks evaluate it
    variables: dict[str, Decl]
    _first: Expr | None = field(default=None, repr=False)  # one order lower, as the check
    #                                                       differentiates it
    wrts: tuple[str, ...] = ()      # the variable of each derivative taken, in order
    direction: str | None = None    # the direction of a directional derivative
    differential_expr: Expr | None = field(default=None, repr=False)
    directions: dict[str, Decl] = field(default_factory=dict)  # dX, dS... (or the direction)
    notes: tuple[str, ...] = ()     # what the derivative assumes (sign's derivative is 0...)
    unstructured: Expr | None = field(default=None, repr=False)  # G, where this is sym(G)

    @property
    def shape(self) -> tuple[Dim, ...]:
        """The symbolic shape: shape(F) + shape(X) (twice shape(X) for a Hessian)."""
        return self.derivative.shape

    @cached_property
    def notation(self):
        return raise_expr(self.derivative, self.reading_order)

    @cached_property
    def differential(self) -> Form:
        """dF in the direction dX (d2f in dX twice for order 2, dx and dS for mixed): the
        derivative contracted with the directions over the variables' axes."""
        return Form(self.differential_expr, {**self.variables, **self.directions},
                    self.reading_order)

    @property
    def declaration(self) -> str:
        """The variables' types as ``declare`` text, with the dimension names the results use
        (so every printed form reads back even where nothing was declared)."""
        return declaration_text(self.variables.values())

    @property
    def shown_as_differential(self) -> bool:
        """Whether ``text`` is the differential: for results of three or more axes, or any
        without a matrix form, the linear map is shown by what it does to dX."""
        return self.direction is None and isinstance(self.notation, IndexForm) and not \
            isinstance(self.differential.notation, IndexForm)

    @property
    def index(self) -> str:
        """The derivative in index notation, ``D[i,j,k,l] = ...`` (a view, not input)."""
        return render(raise_index_form(self.derivative, self.reading_order), TEXT)

    @property
    def reading_order(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.variables)}

    @property
    def function_text(self) -> str:
        """The expression itself, in the same notation."""
        return self.function_in("text")

    def function_in(self, style: str) -> str:
        """The expression itself in "text", "latex" or "unicode"."""
        return render(raise_expr(self.function, self.reading_order), STYLES[style])

    def abbreviated(self, symbol: str = "f", style: str = "text") -> str | None:
        """The derivative with the (scalar) expression itself written as ``symbol``, where it
        appears as a factor (``1/2*f*(...)``); None where it does not."""
        if self.function.ndim or self.is_index_notation or self.shown_as_differential:
            return None
        whole = raise_expr(self.function, self.reading_order)
        short = abbreviate(self.notation, whole, symbol)
        return None if short is None else render(short, STYLES[style])

    @property
    def text(self) -> str:
        """Matrix notation in the input syntax (``matdiff.parse`` reads it back), repeated
        long parts named in ``where`` bindings (``plain`` has none)."""
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")

    def in_style(self, style: str) -> str:
        """The derivative in "text", "latex" or "unicode" (its differential where it has
        three or more axes)."""
        if self.shown_as_differential:
            return self.differential.in_style(style)
        return self.form.in_style(style)

    @cached_property
    def form(self) -> Form:
        """The derivative itself as a Form (its parts that are quantities of the function,
        or of the derivative one order lower, may be named)."""
        quantities = (self.function,) + ((self._first,) if self._first is not None else ())
        return Form(self.derivative, self._all_variables, self.reading_order, quantities,
                    tuple(self.wrts), self.unstructured)

    @property
    def plain(self) -> str:
        """``text`` without ``where`` bindings: every part written out."""
        return self.differential.plain if self.shown_as_differential else self.form.plain

    @property
    def is_index_notation(self) -> bool:
        """Whether ``text`` is index notation (only where not even the differential has a
        matrix form)."""
        return isinstance(self.notation, IndexForm) and not self.shown_as_differential

    @property
    def convention_note(self) -> str | None:
        if self.convention is None:
            return None
        structured = [w for w in dict.fromkeys(self.wrts) if self.variables[w].props & STRUCTURE]
        notes = []
        for x in structured:
            props = self.variables[x].props
            structure = "diagonal" if "diagonal" in props else "symmetric"
            convention = ("diagonal" if structure == "diagonal" and self.convention != "full"
                          else self.convention)
            notes.append(CONVENTION_NOTES[convention].format(x=x, structure=structure))
        return "; ".join(notes) or None

    def numpy(self) -> Callable[..., np.ndarray]:
        """callable(**arrays) -> the derivative's value (vectors are 1-D arrays). Its shape is
        shape(F) followed by the shape of each wrt in turn (shape(x) + shape(S) for
        wrt=("x", "S")); a directional derivative has shape(F) (order 1) or shape(X)."""
        return compile_numpy(self.derivative, self._shapes)

    def check(self, trials: int = 3, seed: int = 0) -> float:
        """Max relative error against central finite differences at random valid points (of
        the derivative one order lower, for higher orders)."""
        lower = self.function if self.order == 1 else self._first
        f = compile_numpy(lower, self._shapes)
        props = {name: d.props for name, d in self._all_variables.items()}
        wrt = self.wrts[-1]
        if self.direction is not None:
            return verify_directional(f, self.numpy(), self._shapes, props, wrt,
                                      self.direction, trials, seed)
        mode = self.convention if self.variables[wrt].props & STRUCTURE else None
        return verify(f, self.numpy(), self._shapes, props, wrt, mode or "full", trials, seed)

    @property
    def _all_variables(self) -> dict[str, Decl]:
        return {**self.variables, **self.directions}

    @property
    def _shapes(self) -> dict[str, tuple[Dim, ...]]:
        return {name: d.shape for name, d in self._all_variables.items()}


def parse(text: str, declare: str | dict | None = None) -> Expr:
    """The simplified IR of an expression (two texts mean the same when they parse to the
    same node)."""
    root, variables = parse_typed(text, declare)
    return simplify(lower(root, variables))


def evaluate(text: str, declare: str | dict | None = None, **values) -> np.ndarray:
    """The NumPy value of any expression of the input language (a derivative, a differential
    with its directions dX...), at ``values`` (vectors as 1-D arrays). Dimension sizes come
    from every value passed, declared variables the text does not use included."""
    root, variables = parse_typed(text, declare)
    shapes = {name: d.shape for name, d in variables.items()}
    for name, decl in parse_declarations(declare).items():
        if name not in shapes and name in values and None not in decl.shape:
            shapes[name] = decl.shape  # binds the dimensions its value shows
    return compile_numpy(lower(root, variables), shapes)(**values)


def derive(expr: str, wrt: str | tuple[str, ...], *, declare: str | dict | None = None,
           order: int = 1, symmetric: str = "sym", direction: str | None = None) -> Result:
    """The derivative of ``expr`` with respect to the variable ``wrt``.

    ``order`` 1 gives the gradient / Jacobian (shape(F) + shape(X)), 2 the Hessian of a scalar,
    3 and more the higher derivatives of a scalar. A tuple ``wrt=("x", "S")`` differentiates by
    each variable in turn (the mixed second derivative, shape(x) + shape(S)). ``direction``
    names a direction V in wrt's space (a variable of its shape, or a new name): the result is
    then the derivative applied to V, dF[V] for order 1, the Hessian applied to V (of wrt's
    shape) for order 2. For a symmetric ``wrt``, ``symmetric`` picks the convention: "sym"
    (default), "full" or "cookbook".
    """
    wrts = _wrts(wrt, order, direction)
    order = len(wrts)
    if symmetric not in CONVENTIONS:
        raise MatdiffError(f"unknown symmetric convention {symmetric!r}",
                           hint="use one of " + ", ".join(CONVENTIONS))
    root, variables = parse_typed(expr, declare)
    for w in wrts:
        if w not in variables:
            used = ", ".join(variables) or "no variables"
            raise MatdiffError(f"cannot differentiate with respect to {w!r}: the expression "
                               f"uses {used}", hint="pass one of them as wrt")
    # the expression as written, with wrt's entries independent: what "full" means and what
    # finite differences along single entries see
    plain = {w: Decl(w, variables[w].shape, variables[w].props - STRUCTURE) for w in wrts}
    f = simplify(lower(root, {**variables, **plain}))
    xs = {w: ir.var(d.name, d.shape, d.props) for w, d in plain.items()}
    conventions = {w: _convention_of(variables[w], symmetric) for w in xs}
    convention = next((c for c in conventions.values() if c is not None), None)
    if order >= 2 and f.ndim:
        raise MatdiffError(f"order={order} needs a scalar expression",
                           hint="differentiate each entry, or take order=1 for the Jacobian")
    if order >= 2 and "cookbook" in conventions.values():
        raise MatdiffError("the cookbook convention is defined for gradients only",
                           hint="use symmetric='sym' or 'full' for a Hessian")
    derivatives = [f]
    for w in wrts:
        derivatives.append(_differentiate(derivatives[-1], xs[w], expr))
    declared = {w: ir.var(w, variables[w].shape, variables[w].props) for w in xs}
    restore = {xs[w]: declared[w] for w in xs}
    taken = set(variables)
    if direction is not None:
        v = _direction(direction, declared[wrts[0]], variables, expr)
        directions = [v] * order
    elif isinstance(wrt, str):
        directions = [direction_variable(declared[wrt], taken)] * order
    else:
        directions = []
        for w in wrts:
            directions.append(direction_variable(declared[w],
                                                 taken | {d.data[0] for d in directions}))
    lead = f.ndim
    blocks = [xs[w].ndim for w in wrts]

    def with_conventions(d: Expr, block_variables: list[str], first: int) -> Expr:
        start = first
        for w, k in zip(block_variables, (xs[b].ndim for b in block_variables)):
            if conventions[w] is not None:
                d = _convention(d, conventions[w], start)
            start += k
        return d

    if direction is None:
        result = with_conventions(derivatives[-1], list(wrts), lead)
        first = with_conventions(derivatives[-2], list(wrts[:-1]), lead)
    else:   # the derivative applied to V in every block but the first (order 1: that one too)
        k = order - 1 if order > 1 else 1
        result = apply_to(derivatives[-1], lead + (blocks[0] if order > 1 else 0), [v] * k)
        first = derivatives[-2]
        if order > 1:
            result = with_conventions(result, [wrts[0]], lead)
            first = apply_to(first, lead + blocks[0], [v] * (order - 2)) if order > 2 else first
            first = with_conventions(first, [wrts[0]], lead)
    result = simplify(ir.substitute(result, restore))
    _check_size(result)
    differential = simplify(ir.substitute(apply_to(derivatives[-1], lead, directions), restore))
    _check_size(differential)
    first = simplify(ir.substitute(first, restore))
    dirs = {d.data[0]: Decl(d.data[0], d.shape, d.data[1]) for d in directions
            if d.data[0] not in variables}
    unstructured = None
    if direction is None and order == 1 and not f.ndim and conventions[wrts[0]] == "sym":
        unstructured = simplify(ir.substitute(derivatives[-1], restore))
    return Result(expr, wrt if isinstance(wrt, str) else tuple(wrt), order, convention,
                  result, f, variables, first, wrts, direction, differential, dirs,
                  _notes(derivatives[:-1], wrts), unstructured)


def _wrts(wrt: str | tuple[str, ...], order: object, direction: str | None) -> tuple[str, ...]:
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise MatdiffError(f"order must be a whole number ≥ 1, not {order!r}")
    if isinstance(wrt, str):
        return (wrt,) * order
    wrts = tuple(wrt) if isinstance(wrt, (tuple, list)) else ()
    if not wrts or not all(isinstance(w, str) for w in wrts):
        raise MatdiffError(f"wrt must be a variable name or a tuple of them, not {wrt!r}")
    if order not in (1, len(wrts)):
        raise MatdiffError(f"wrt={wrt!r} is a derivative of order {len(wrts)}, but "
                           f"order={order}", hint="leave order out for a tuple wrt")
    if direction is not None and len(set(wrts)) > 1:
        raise MatdiffError("a direction needs a single wrt variable",
                           hint="pass wrt as one name and order for higher derivatives")
    return wrts


def _direction(name: str, x: Expr, variables: dict[str, Decl], source: str) -> Expr:
    """The direction V: an existing variable of x's shape, or a new one in x's space."""
    if not isinstance(name, str) or not name.isidentifier():
        raise MatdiffError(f"direction must be a variable name, not {name!r}")
    decl = variables.get(name)
    if decl is None:
        return direction_variable(x, set(variables), name)
    if decl.shape != x.shape or name == x.data[0]:
        raise MatdiffError(f"direction {name} has shape {ir.shape_text(decl.shape)}, but "
                           f"{x.data[0]} has shape {ir.shape_text(x.shape)}"
                           if name != x.data[0] else f"direction {name} is the variable itself",
                           hint="name a variable of the same shape, or a new name")
    return ir.var(name, decl.shape, decl.props)


def _notes(differentiated: list[Expr], wrts: tuple[str, ...]) -> tuple[str, ...]:
    """What the derivatives assume: a primitive with a note (sign: derivative 0 where it exists)
    met on the way to a variable."""
    notes = []
    for e, w in zip(differentiated, wrts):
        for node in ir.topological(e):
            note = PRIMITIVES[node.op].note if node.op in PRIMITIVES else None
            if note and ir.depends_on(node, w) and note not in notes:
                notes.append(note)
    return tuple(notes)


def _convention_of(decl: Decl, symmetric: str) -> str | None:
    structured = decl.props & STRUCTURE
    if not structured:
        return None
    return "diagonal" if "diagonal" in structured and symmetric != "full" else symmetric


def _differentiate(f: Expr, x: Expr, source: str) -> Expr:
    try:
        d = simplify(derivative(f, x))
    except NotDifferentiable as err:
        raise err.at_call(err.function, source) from None
    _check_size(d)
    return d


def _check_size(e: Expr) -> None:
    if ir.size(e) > MAX_IR_NODES:
        raise MatdiffError(f"the derivative has more than {MAX_IR_NODES} distinct parts, too "
                           "large to simplify and print", hint="split the expression")


def _convention(d: Expr, convention: str, start: int) -> Expr:
    """Apply the symmetric-variable convention to the pair of axes ``start, start + 1``."""
    if convention != "full":
        n = d.ndim
        idx = tuple(range(n))
        swapped = idx[:start] + (idx[start + 1], idx[start]) + idx[start + 2:]
        t = ir.einsum([(d, idx)], swapped)
        diagonal = ir.einsum([(d, idx), (ir.delta(d.shape[start]), (start, start + 1))], idx)
        if convention == "sym":
            d = ir.add([(Fraction(1, 2), d), (Fraction(1, 2), t)])
        elif convention == "cookbook":
            d = ir.add([(1, d), (1, t), (-1, diagonal)])
        elif convention == "diagonal":
            d = diagonal
    return simplify(d)
