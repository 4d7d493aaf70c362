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
from .notation.differential import applied_note
from .notation.differential import direction as direction_variable
from .notation.factor import abbreviate
from .notation.raising import raise_expr, raise_index_form
from .notation.render import LATEX, TEXT, UNICODE, render
from .notation.tree import IndexForm, Sym
from .numeric.check import verify, verify_directional
from .numeric.codegen import compile_numpy
from .syntax.latex import variable_name
from .syntax.lower import lower
from .syntax.parse import CONSTANTS, FUNCTIONS, parse_typed
from .syntax.types import Decl, declaration_text, parse_declarations, with_stated_sizes

CONVENTIONS = ("sym", "full", "cookbook")
STRUCTURE = frozenset({"symmetric", "posdef", "diagonal"})
MAX_IR_NODES = 50_000
STYLES = {"text": TEXT, "latex": LATEX, "unicode": UNICODE}
RESERVED = frozenset(FUNCTIONS + CONSTANTS)

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
    fallback: Callable[[], object] | None = field(default=None, repr=False)  # a notation of
    #                                 the same value, for where expr raises to index notation

    @cached_property
    def notation(self):
        note = raise_expr(self.expr, self.reading_order)
        if isinstance(note, IndexForm) and self.fallback is not None:
            return self.fallback() or note
        return note

    @property
    def text(self) -> str:
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")

    def in_style(self, style: str) -> str:
        text = render(self.notation, STYLES[style])
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

    @property
    def declared(self) -> str:
        """Every variable's type, as assumed or declared, in the ``declare`` syntax (so it can be
        edited and passed back): ``"x, mu: vector(n); Sigma: matrix(n,n); k: scalar"``."""
        return declaration_text(self.variables.values())

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
                    self.reading_order, self._applied_derivative)

    def _applied_derivative(self):
        """The derivative's matrix notation applied to the directions (G'*dx, tr(G'*dX)), for
        where the contraction's own index graph has no matrix form."""
        if self.direction is not None or self.convention == "cookbook" or \
                isinstance(self.notation, IndexForm):
            return None
        names = list(self.directions) or [f"d{w}" for w in self.wrts]
        if len(names) == 1 and self.order > 1:
            names = names * self.order
        blocks = [(Sym(n), len(self.variables[w].shape)) for n, w in zip(names, self.wrts)]
        return applied_note(self.notation, blocks, self.function.ndim)

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

    def differential_abbreviated(self, symbol: str = "f", style: str = "text") -> str | None:
        """The differential with the (scalar) expression written as ``symbol`` where it is a
        factor (``f*(((x - m)'*inv(S)*dx)^2 - dx'*inv(S)*dx)``); None where it is not."""
        if self.function.ndim or isinstance(self.differential.notation, IndexForm):
            return None
        whole = raise_expr(self.function, self.reading_order)
        short = abbreviate(self.differential.notation, whole, symbol)
        return None if short is None else render(short, STYLES[style])

    @property
    def text(self) -> str:
        """Matrix notation in the input syntax (``matdiff.parse`` reads it back)."""
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
        return Form(self.derivative, self._all_variables, self.reading_order).in_style(style)

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


def parse(text: str, declare: str | dict | None = None, *, syntax: str = "auto") -> Expr:
    """The simplified IR of an expression (two texts mean the same when they parse to the
    same node). ``syntax``: "text", "latex" or "auto" (LaTeX if it has a backslash or braces)."""
    root, variables = parse_typed(text, declare, syntax)
    return simplify(lower(root, variables))


def evaluate(text: str, declare: str | dict | None = None, *, syntax: str = "auto",
             **values) -> np.ndarray:
    """The NumPy value of any expression of the input language (a derivative, a differential
    with its directions dX...), at ``values`` (vectors as 1-D arrays). Dimension sizes come
    from every value passed, declared variables the text does not use included. ``syntax``:
    "text", "latex" or "auto" (LaTeX if it has a backslash, braces or bars)."""
    root, variables = parse_typed(text, declare, syntax)
    shapes = {name: d.shape for name, d in variables.items()}
    for name, decl in parse_declarations(declare).items():
        if name not in shapes and name in values and None not in decl.shape:
            shapes[name] = decl.shape  # binds the dimensions its value shows
    return compile_numpy(lower(root, variables), shapes)(**values)


def derive(expr: str, wrt: str | tuple[str, ...], *, declare: str | dict | None = None,
           order: int = 1, symmetric: str = "sym", direction: str | None = None,
           syntax: str = "auto") -> Result:
    """The derivative of ``expr`` with respect to the variable ``wrt``.

    ``order`` 1 gives the gradient / Jacobian (shape(F) + shape(X)), 2 the Hessian of a scalar,
    3 and more the higher derivatives of a scalar. A tuple ``wrt=("x", "S")`` differentiates by
    each variable in turn (the mixed second derivative, shape(x) + shape(S)). ``direction``
    names a direction V in wrt's space (a variable of its shape, or a new name): the result is
    then the derivative applied to V, dF[V] for order 1, the Hessian applied to V (of wrt's
    shape) for order 2. For a symmetric ``wrt``, ``symmetric`` picks the convention: "sym"
    (default), "full" or "cookbook". ``syntax``: "text", "latex" or "auto" (LaTeX if it has a
    backslash, braces or bars); ``wrt`` may be spelled as in the input (``Sigma``, ``Σ``,
    ``\\Sigma``).
    """
    # spelled as in the input: Σ, \Sigma, \boldsymbol\mu
    wrt = tuple(map(variable_name, wrt)) if isinstance(wrt, (tuple, list)) else variable_name(wrt)
    wrts = _wrts(wrt, order, direction)
    order = len(wrts)
    if symmetric not in CONVENTIONS:
        raise MatdiffError(f"unknown symmetric convention {symmetric!r}",
                           hint="use one of " + ", ".join(CONVENTIONS))
    root, variables = parse_typed(expr, declare, syntax)
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
    differentiated: list[tuple[Expr, str]] = []  # what was differentiated by what (for notes)

    def d(e: Expr, w: str, along: Expr | None = None) -> Expr:
        differentiated.append((e, w))
        return _differentiate(e, xs[w], expr, along)

    # the differential: the rules applied to the directions (forward mode), of F's shape
    differentials = [f]
    for w, v_ in zip(wrts, directions):
        differentials.append(d(differentials[-1], w, v_))
    lead = f.ndim

    def with_conventions(e: Expr, block_variables: tuple[str, ...]) -> Expr:
        start = lead
        for w in block_variables:
            if conventions[w] is not None:
                e = _convention(e, conventions[w], start)
            start += xs[w].ndim
        return e

    if direction is None:
        derivatives = [f]
        for w in wrts:
            derivatives.append(d(derivatives[-1], w))
        result = with_conventions(derivatives[-1], wrts)
        first = with_conventions(derivatives[-2], wrts[:-1])
    elif order == 1:    # dF[V]
        result, first = differentials[-1], f
    else:               # the gradient of d^(k-1)f[V, ..., V]: the Hessian applied to V for k=2
        result = with_conventions(d(differentials[-2], wrts[0]), wrts[:1])
        first = f if order == 2 else differentials[-3]
        first = with_conventions(d(first, wrts[0]), wrts[:1])
    result = simplify(ir.substitute(result, restore))
    _check_size(result)
    differential = simplify(ir.substitute(differentials[-1], restore))
    first = simplify(ir.substitute(first, restore))
    dirs = {v_.data[0]: Decl(v_.data[0], v_.shape, v_.data[1]) for v_ in directions
            if v_.data[0] not in variables}
    return Result(expr, wrt if isinstance(wrt, str) else tuple(wrt), order, convention,
                  result, f, variables, first, wrts, direction, differential, dirs,
                  _notes(differentiated))


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
    if not isinstance(name, str) or not name.isidentifier() or name in RESERVED:
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


def _notes(differentiated: list[tuple[Expr, str]]) -> tuple[str, ...]:
    """What the derivatives assume: a primitive with a note (sign: derivative 0 where it exists)
    met on the way to a variable."""
    notes = []
    for e, w in differentiated:
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


def _differentiate(f: Expr, x: Expr, source: str, direction: Expr | None = None) -> Expr:
    try:
        d = simplify(derivative(f, x, direction))
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
