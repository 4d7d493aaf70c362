"""The derivation as a textbook writes it: differential, canonical form, identification.

The state of a derivation is the IR of the whole right-hand side in which differentials not
yet worked out are placeholders ``d(u)``: opaque nodes (op "d") that print as ``d(<u>)``, and
since d(u) is in the input language, every step's text evaluates to the true differential. A
step expands every placeholder by one rule of the engine (``core.differentiate.chain_rule``,
the very rules ``derivative`` applies), the arguments' differentials becoming placeholders in
turn; linear moves (sums, constant factors) are made on the way, not shown as steps of their
own. Once no placeholder is left, the differential is brought to the canonical form of the
first identification table (``tr(G'*dX)``, ``g'*dx``, ``g*dt``) and the derivative read off.
For order 2 the derivation goes on from df (dX constant) to d2f and the second
identification theorem (``d2f = dx'*B*dx``, so ``H = (B + B')/2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from ..core import ir
from ..core.differentiate import chain_rule, derivative
from ..core.ir import Expr
from ..core.simplify import simplify, split_coefficient
from ..errors import MatdiffError
from ..notation.factor import abbreviate
from ..notation.raising import raise_expr
from ..notation.render import LATEX, TEXT, UNICODE, _inline_chain, render
from ..notation.tree import Call, IndexForm, Mono, Sum, Sym, Transpose, Where, names
from ..syntax.types import TANGENT_PROPERTIES

PLACEHOLDER = "d"  # the op of a differential not yet worked out; raising prints it d(u)
NAME_LENGTH = 16   # a part of f printed at least this long gets a name (where q = ...)
CONSTANT_LENGTH = 13  # a constant factor, such as (2*pi)^(-k/2), from this long on
CONSTANT_NAMES = "cbae"
SCALAR_NAMES = "qpuvwsrh"
MATRIX_NAMES = "QPMNRTUW"

# the rule of each primitive as a textbook states it, for the differential
RULES = {
    "exp": "d(exp(u)) = exp(u).*du",
    "log": "d(log(u)) = du./u",
    "sin": "d(sin(u)) = cos(u).*du",
    "cos": "d(cos(u)) = -sin(u).*du",
    "tan": "d(tan(u)) = (1 + tan(u).^2).*du",
    "tanh": "d(tanh(u)) = (1 - tanh(u).^2).*du",
    "abs": "d(abs(u)) = sign(u).*du",
    "relu": "d(relu(u)) = (1 + sign(u))/2.*du",
    "sign": "d(sign(u)) = 0 (where it exists)",
    "pow": "d(u^p) = p*u^(p - 1)*du",
    "pow_exponent": "d(u^v) = v*u^(v - 1)*du + u^v*log(u)*dv",
    "inv": "d(inv(X)) = -inv(X)*dX*inv(X)",
    "det": "d(det(X)) = det(X)*tr(inv(X)*dX)",
    "logdet": "d(log(det(X))) = tr(inv(X)*dX)",
    "mpow": "d(X^n) = sum over j of X^j*dX*X^(n-1-j)",
    "einsum": "product rule d(u*v) = du*v + u*dv",
    "linear": "linearity: d(u + v) = du + dv, d(A*u*B) = A*du*B",
}
CHAIN = "chain rule (Cauchy's rule of invariance)"
CONVENTIONS = {
    "sym": "{x} symmetric, so is d{x}: df = tr(sym(G)*d{x}) with sym(G) = (G + G')/2, the "
           "symmetric gradient",
    "full": "{x} is {structure}, but G is kept: the gradient that treats all entries as "
            "independent",
    "cookbook": "{x} is symmetric: the Matrix Cookbook's G + G' - diag(diag(G)) (each free "
                "entry X_ij = X_ji as one variable)",
    "diagonal": "{x} is diagonal, so is d{x}: the gradient on diagonal matrices is diag(diag(G))",
}
SECOND_TRACE_RULE = ("second identification theorem: tr(B*dX'*C*dX) gives H = (kron(B', C) + "
                     "kron(B, C'))/2, tr(B*dX*C*dX) gives H = K*(kron(B', C) + kron(C', B))/2 "
                     "(K the commutation matrix)")
FIRST_FORMS = {
    0: ("g*dt", "df = g*d{x}, so df/d{x} = g"),
    1: ("g'*dx", "df = g'*d{x}, so df/d{x} = g"),
    2: ("tr(G'*dX)", "df = tr(G'*d{x}), so df/d{x} = G"),
}


@dataclass(frozen=True)
class Step:
    """One move: the rule it applied and the whole right-hand side after it (``text`` in the
    input syntax with its ``where`` bindings: ``matdiff.evaluate(text, wrt=...)`` gives its
    value), ``result`` the derivative read off, on the identification step."""

    rule: str
    lhs: str     # df, d2f
    text: str
    latex: str
    unicode: str
    body: str    # text without the where bindings
    result: str | None = None
    result_lhs: str | None = None  # df/dS, d2f/dx2
    result_short: str | None = None  # the result with f for the function, for display
    result_latex: str | None = None


    def to_dict(self) -> dict:
        return {"rule": self.rule, "lhs": self.lhs, "text": self.text, "latex": self.latex,
                "unicode": self.unicode, "result": self.result, "result_lhs": self.result_lhs,
                "result_latex": self.result_latex}


class Steps(Sequence[Step]):
    """The derivation, a list of :class:`Step`, with ``text``, ``latex`` and ``markdown``
    renderings (and ``_repr_markdown_`` / ``_repr_latex_`` for notebooks)."""

    def __init__(self, steps: list[Step], bindings: list[tuple[str, str, str]]):
        self._steps = list(steps)
        self.bindings = bindings  # (name, text, latex) of the names the steps use

    def __getitem__(self, i):
        return self._steps[i]

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"<Steps: {len(self)} steps>"

    @property
    def where(self) -> str:
        """The names the steps use, in one line (``where q = ...``), or ''."""
        return "where " + ", ".join(f"{n} = {t}" for n, t, _ in self.bindings) \
            if self.bindings else ""

    @property
    def text(self) -> str:
        lines = []
        for k, s in enumerate(self._steps, 1):
            lines.append(f"{k:2d}. {s.rule}")
            lines.append(f"    {s.lhs} = {s.body}")
            if s.result is not None:
                lines.append(f"    {s.result_lhs} = {s.result_short or s.result}")
        if self.bindings:
            lines.append(f"    {self.where}")
        return "\n".join(lines)

    @property
    def latex(self) -> str:
        rows = [rf"{_latex_lhs(s.lhs)} &= {s.latex} && \text{{{_latex_text(s.rule)}}}"
                for s in self._steps]
        where = ""
        if self.bindings:
            where = r"\\ &\text{where } " + ", ".join(f"{n} = {t}" for n, _, t in self.bindings)
        return r"\begin{aligned}" + r" \\ ".join(rows) + where + r"\end{aligned}"

    @property
    def markdown(self) -> str:
        lines = []
        for k, s in enumerate(self._steps, 1):
            rule = s.rule.replace("*", r"\*").replace("_", r"\_")
            line = f"{k}. {rule}: ${_latex_lhs(s.lhs)} = {s.latex}$"
            if s.result_latex is not None:
                line += f", so ${_latex_result(s.result_lhs)} = {s.result_latex}$"
            lines.append(line)
        if self.bindings:
            lines.append("")
            lines.append("where " + ", ".join(f"${n} = {t}$" for n, _, t in self.bindings))
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_latex_(self) -> str:
        return f"$${self.latex}$$"

    def to_dict(self) -> dict:
        return {"steps": [s.to_dict() for s in self._steps],
                "where": [{"name": n, "text": t, "latex": tex} for n, t, tex in self.bindings]}


def _latex_lhs(lhs: str) -> str:
    return r"\mathrm{d}^2 f" if lhs == "d2f" else r"\mathrm{d}f"


def _latex_result(lhs: str | None) -> str:
    if lhs is None or "/" not in lhs:
        return lhs or ""
    top, bottom = lhs.split("/")
    power = "^2" if top.startswith("d2") else ""
    top = r"\mathrm{d}" + power + " " + top[2 if power else 1:]
    bottom = r"\mathrm{d}" + " " + (bottom[1:-1] + power if power else bottom[1:])
    return rf"\frac{{{top}}}{{{bottom}}}"


def _latex_text(rule: str) -> str:
    return rule.replace("\\", "").replace("_", r"\_").replace("^", r"\^{}").replace("&", "and")


# ----------------------------------------------------------------------------------------------
# the derivation
# ----------------------------------------------------------------------------------------------

def placeholder(u: Expr) -> Expr:
    return Expr(PLACEHOLDER, (u,), None, u.shape)


def derivation(result) -> Steps:
    """The steps of a :class:`matdiff.Result` of one variable (order 1 or 2, no direction)."""
    if len(set(result.wrts)) != 1 or result.direction is not None:
        raise MatdiffError("steps are shown for derivatives by one variable, without a "
                           "direction", hint="derive by one wrt, without direction=")
    if result.order > 2:
        raise MatdiffError(f"steps are shown for orders 1 and 2, not {result.order}")
    return _Derivation(result).run()


class _Derivation:
    def __init__(self, r):
        self.r = r
        self.name = r.wrts[0]
        # the variable with its declared properties (a symmetric S prints inv(S), never
        # inv(S)'), its direction in the same space: every step holds for such directions
        decl = r.variables[self.name]
        self.x = ir.var(self.name, decl.shape, decl.props)
        self.f = self.declared(r.function)
        direction = next(iter(r.directions.values()), None) if r.directions else None
        dx_name = direction.name if direction is not None else f"d{self.name}"
        self.dx = ir.var(dx_name, self.x.shape, decl.props & TANGENT_PROPERTIES)
        self.order = dict(r.reading_order)
        self.order.setdefault(dx_name, len(self.order))
        self.steps: list[Step] = []
        self.named = self._names()
        self.whole = raise_expr(self._with_names(self.f), self.order) if not self.f.ndim \
            else None
        self.used: dict[str, None] = {}
        f = "F" if self.f.ndim else "f"
        self.result_lhs = f"d{f}/d{self.name}" if r.order == 1 else \
            f"d2{f}/d{self.name}2"

    # -- names --

    def _names(self) -> dict[Expr, str]:
        """Names for the long parts of f (bottom up: a part is named once it prints long
        with its own parts named), letters no variable or dimension uses."""
        taken = set(self.r.variables) | set(self.r.declared) | {
            "f", "d", "pi", "eye", self.dx.data[0]} | {
            d for v in self.r.variables.values() for d in v.shape if isinstance(d, str)}
        named: dict[Expr, str] = {}
        letters = {1: iter(c for c in SCALAR_NAMES if c not in taken),
                   2: iter(c for c in MATRIX_NAMES if c not in taken),
                   0: iter(c for c in CONSTANT_NAMES if c not in taken)}
        for node in ir.topological(self.f):
            if node is self.f or not node.args or node.ndim > 2 or node.op == "sum" \
                    and len(node.args) == 1:
                continue
            shown = render(raise_expr(ir.substitute(node, {k: _named(k, v) for k, v in
                                                           named.items()}), self.order), TEXT)
            constant = not node.ndim and not ir.depends_on(node, self.name)
            if len(shown) >= (CONSTANT_LENGTH if constant else NAME_LENGTH):
                letter = next(letters[0 if constant else 2 if node.ndim == 2 else 1], None)
                if letter is not None:
                    named[node] = letter
        return named

    def _with_names(self, e: Expr) -> Expr:
        """e with its named parts (not e itself) shown by their names."""
        return ir.substitute(e, {k: _named(k, v) for k, v in self.named.items() if k is not e})

    # -- recording --

    def _abbreviated(self, note):
        """note with f for the function where it is a factor."""
        if self.whole is not None and names(self.whole).count("f") == 0:
            short = abbreviate(note, self.whole, "f")
            if short is not None:
                self.used.setdefault("f", None)
                return short
        return note

    def record(self, rule: str, lhs: str, note, result: str | None = None,
               result_lhs: str | None = None, result_latex: str | None = None) -> None:
        note = self._abbreviated(note)
        bound = self._bindings(note)
        texts = {}
        for style, key in ((TEXT, "text"), (LATEX, "latex"), (UNICODE, "unicode")):
            body = render(note, style)
            texts[key] = body
            if bound and style is TEXT:
                texts["full"] = render(Where(note, tuple(n for n, _ in bound),
                                             tuple(v for _, v in bound)), TEXT)
        if self.steps and self.steps[-1].body == texts["text"] and result is None:
            return  # the move changed nothing that shows
        short = None
        if result is not None and result_lhs is None:  # the reported derivative
            result_lhs, short, result_latex = self.result_lhs, self._short_result(), \
                self.r.latex
        self.steps.append(Step(rule, lhs, texts.get("full", texts["text"]), texts["latex"],
                               texts["unicode"], texts["text"], result, result_lhs, short,
                               result_latex))

    def _bindings(self, note) -> list[tuple[str, object]]:
        """The names a note uses, with the notes they stand for (f and the parts of f), each
        after the names it uses."""
        values = {v: raise_expr(self._with_names(k), self.order) for k, v in self.named.items()}
        if self.whole is not None:
            values["f"] = self.whole
        out: dict[str, object] = {}

        def need(n):
            for name in names(n):
                if name in values and name not in out:
                    out[name] = values[name]
                    self.used[name] = None
                    need(values[name])

        need(note)
        return list(out.items())

    def declared(self, e: Expr) -> Expr:
        """e with the variable as declared (the result's function has it without its
        structure, as finite differences along single entries see it)."""
        found = [n for n in ir.topological(e) if n.op == "var" and n.data[0] == self.name]
        return simplify(ir.substitute(e, {n: self.x for n in found}))

    def show(self, e: Expr):
        return raise_expr(self._with_names(e), self.order)

    # -- the moves --

    def run(self) -> Steps:
        state = placeholder(self.f)
        if self.r.order == 1:
            self.record("the differential of f", "df", self.show(state))
            self.identify_first(self.expand(state, "df"))
        else:  # d2f = d(df) throughout: the steps to df inside the outer d(...)
            self.record(f"the second differential d2f = d(df), d{self.name} constant", "d2f",
                        self.show(placeholder(state)))
            df = self.expand(state, "d2f", outer=True)
            self.identify_second(self.expand(placeholder(df), "d2f"))
        values = {v: raise_expr(self._with_names(k), self.order) for k, v in self.named.items()}
        if self.whole is not None:
            values["f"] = self.whole
        bindings = [(n, render(values[n], TEXT), render(values[n], LATEX))
                    for n in self.used]
        return Steps(self.steps, bindings)

    def expand(self, state: Expr, lhs: str, outer: bool = False) -> Expr:
        """Every placeholder expanded by one rule, step after step, until none is left
        (shown inside one more d(...) where ``outer``: the steps to df on the way to d2f)."""
        while True:
            pending = [n for n in ir.topological(state) if n.op == PLACEHOLDER]
            if not pending:
                return state
            rules: dict[str, None] = {}
            memo: dict[Expr, Expr | None] = {}
            state = _simplified(ir.substitute(state, {p: self.rule(p.args[0], rules, memo)
                                                      for p in pending}))
            self.record(_rule_text(rules), lhs, self.show(placeholder(state) if outer
                                                          else state))

    def rule(self, u: Expr, rules: dict, memo: dict) -> Expr:
        """d(u) by u's own rule, the arguments' differentials placeholders (None where
        constant), linear ones worked out at once."""
        if u in memo:
            return memo[u]
        if not ir.depends_on(u, self.name):
            return ir.zero(u.shape)  # d2f of a linear f: df does not depend on x
        tangents = [self.tangent(a, rules, memo) for a in u.args]
        if _linear(u, self.name):
            rules.setdefault("linear", None)
        else:
            key = u.op
            if u.op == "pow" and ir.depends_on(u.args[1], self.name):
                key = "pow_exponent"
            rules.setdefault(key, None)
            if u.op != "einsum" and any(a is not self.x and ir.depends_on(a, self.name)
                                        for a in u.args):
                rules.setdefault("chain", None)
        done = memo[u] = chain_rule(u, tangents, 0, self.name)
        return done

    def tangent(self, a: Expr, rules: dict, memo: dict) -> Expr | None:
        if not ir.depends_on(a, self.name):
            return None
        if a is self.x:
            return self.dx
        if _linear(a, self.name):
            return self.rule(a, rules, memo)
        return placeholder(a)

    # -- canonical forms and identification --

    def _terms(self, e: Expr) -> list[Expr]:
        if e.op == "sum" and len(e.args) > 1:
            return [simplify(ir.scale(c, t)) for c, t in zip(e.data, e.args)]
        return [e]

    def applied(self, g: Expr, dx) -> object:
        """The notation of g applied to dx as the first table writes it: tr(G'*dX), g'*dx,
        g*dt, with g's scalar factors in front."""
        k = self.x.ndim
        if k == 2:
            note = raise_expr(self._with_names(simplify(ir.transpose(g))), self.order)
        else:
            note = raise_expr(self._with_names(g), self.order)
        coef, scalars, chain, den = _parts(note)
        if k == 0:
            return Mono(coef, scalars + (dx,), chain, den)
        if k == 1:  # g'*dx: the contraction as the raiser writes it, where it ends in dx
            row = raise_expr(self._with_names(simplify(ir.einsum([(g, (0,)), (self.dx, (0,))],
                                                                 ()))), self.order)
            r_coef, r_scalars, r_chain, r_den = _parts(row)
            if r_chain and _inline_chain(r_chain)[-1] == dx:
                return Mono(r_coef, r_scalars, r_chain, r_den)
            if not chain:
                return None
            return Mono(coef, scalars, (Transpose(Mono(Fraction(1), (), chain)), dx), den)
        inner = Mono(Fraction(1), (), chain + (dx,)) if chain else dx
        return Mono(coef, scalars + (Call("tr", (inner,)),), (), den)

    def canonical_first(self, df: Expr, record: bool = True) -> Expr | None:
        """Each term as in the first identification table, then collected: tr(G'*dX)...;
        returns G (None where the terms have no such form)."""
        if self.f.ndim:
            return None
        dx = Sym(self.dx.data[0])
        terms = self._terms(df)
        grads = [simplify(derivative(t, self.dx)) for t in terms]
        notes = [self.applied(g, dx) for g in grads]
        if any(n is None for n in notes):
            return None
        k = self.x.ndim
        if record and len(terms) > 1:
            moved = {0: "each term as g*dt",
                     1: "a scalar is its own transpose: each term as g'*dx",
                     2: "a scalar is its own trace, and tr(A*B) = tr(B*A): each term as "
                        "tr(G'*dX)"}[k]
            self.record(moved, "df", Sum(tuple(_as_term(n) for n in notes)))
        g = simplify(derivative(df, self.dx))
        if record:
            self.record("collecting terms: the canonical form " + FIRST_FORMS[k][0], "df",
                        self.applied(g, dx))
        return g

    def identify_first(self, df: Expr) -> None:
        r = self.r
        dx = Sym(self.dx.data[0])
        if self.f.ndim:
            self.record(f"dF is the derivative applied to d{self.name}", "df", self.show(df),
                        result=r.text)
            return
        g = self.canonical_first(df)
        rule = "identification: " + FIRST_FORMS[self.x.ndim][1].format(x=self.name)
        final = self.applied(self.declared(r.derivative), dx)
        if r.convention is not None:  # G first, then the convention and its reason
            if g is not None:
                g_note = self._abbreviated(self.show(g))
                self.record(rule, "df", self.applied(g, dx), result=render(g_note, TEXT),
                            result_lhs="G", result_latex=render(g_note, LATEX))
            structure = "diagonal" if "diagonal" in self.x.data[1] else "symmetric"
            rule = CONVENTIONS[r.convention].format(x=self.name, structure=structure)
            if r.convention == "cookbook":  # not a gradient: df is still tr(G'*dX)
                final = None
        if final is None:
            final = self.steps[-1]
            self.steps.append(Step(rule, "df", final.text, final.latex, final.unicode,
                                   final.body, r.text, self.result_lhs, self._short_result(),
                                   r.latex))
            return
        self.record(rule, "df", final, result=r.text)

    def _short_result(self) -> str | None:
        """The result with f for the function, where it is a factor (and f is bound)."""
        short = self.r.abbreviated("f") if self.whole is not None else None
        if short is not None:
            self.used.setdefault("f", None)
        return short

    def identify_second(self, d2f: Expr) -> None:
        r = self.r
        k = self.x.ndim
        dx = Sym(self.dx.data[0])
        if k == 1:
            terms = self._terms(d2f)
            bs = [_bilinear(t, self.dx) for t in terms]
            b = simplify(ir.add([(1, t) for t in bs]))
            self.record("the second differential as a quadratic form: d2f = dx'*B*dx", "d2f",
                        Mono(Fraction(1), (), (Transpose(dx), self.show(b), dx)))
            h = self.show(self.declared(r.derivative))
            self.record("second identification theorem: d2f = dx'*B*dx, so the Hessian is "
                        "H = (B + B')/2", "d2f",
                        Mono(Fraction(1), (), (Transpose(dx), h, dx)), result=r.text)
        elif k == 0:
            h = self.show(self.declared(r.derivative))
            self.record(f"second identification: d2f = h*d{self.name}^2, so the second "
                        "derivative is h", "d2f", Mono(Fraction(1), (h, dx, dx)), result=r.text)
        else:
            forms = [_trace_form(t, self.dx) for t in self._terms(d2f)]
            note = self.show(d2f)
            if forms and all(f is not None for f in forms):
                note = Sum(tuple(self._trace_note(*f) for f in forms))
                self.record("each term as tr(B*dX'*C*dX) or tr(B*dX*C*dX)", "d2f", note)
                rule = SECOND_TRACE_RULE
            else:
                rule = (f"second identification theorem: d2f = vec(d{self.name})'*B*"
                        f"vec(d{self.name}), so the Hessian is H = (B + B')/2")
            self.record(rule, "d2f", note, result=r.text)

    def _trace_note(self, coef: Fraction, b: Expr, c: Expr, transposed: bool) -> Mono:
        """c*tr(B*dX'*C*dX) (or without the transpose) in notation, B and C raised."""
        dx = Sym(self.dx.data[0])
        first = Transpose(dx) if transposed else dx
        chain = tuple(n for n in (self._factor(b), first, self._factor(c), dx) if n is not None)
        return Mono(coef, (Call("tr", (Mono(Fraction(1), (), chain),)),))

    def _factor(self, m: Expr):
        """The notation of a matrix factor; None for the identity (tr(dX'*dX))."""
        return None if m.op == "delta" else self.show(m)


def _trace_form(term: Expr, dx: Expr) -> tuple[Fraction, Expr, Expr, bool] | None:
    """(c, B, C, transposed) with the term = c*tr(B*dX'*C*dX) (transposed) or
    c*tr(B*dX*C*dX): the contraction's other factors fall into two parts, each joining one
    index of the first dX to one of the second; None where the term has no such form."""
    c, t = split_coefficient(term)
    if t.op != "einsum" or t.data[1]:
        return None
    factors = list(zip(t.args, t.data[0]))
    at = [n for n, (a, _) in enumerate(factors) if a is dx]
    rest = [f for n, f in enumerate(factors) if n not in at]
    if len(at) != 2 or any(ir.depends_on(a, dx.data[0]) for a, _ in rest):
        return None
    (r1, c1), (r2, c2) = factors[at[0]][1], factors[at[1]][1]
    slots = [r1, c1, r2, c2]
    if len(set(slots)) < 3 or r1 == c1 or r2 == c2:
        return None
    dims = ir.index_dims(factors)
    parts = _components(rest)
    links: dict[frozenset, Expr] = {}
    scalars = []
    for part in parts:
        touched = sorted({i for _, idx in part for i in idx if i in slots}, key=slots.index)
        if not touched:
            scalars.extend(part)
            continue
        if len(touched) != 2 or frozenset(touched) in links:
            return None
        links[frozenset(touched)] = part
    for shared in {i for i in slots if slots.count(i) == 2}:  # dX*dX: an identity between
        links[frozenset([shared])] = []
    if len(links) != 2:
        return None

    def matrix(row: int, col: int) -> Expr:
        part = links.get(frozenset([row, col]))
        if part is None and row == col:
            part = links.get(frozenset([row]))
        if part is None:
            raise LookupError
        if not part:
            return ir.delta(dims[row])
        return simplify(ir.einsum(part, (row, col)))

    try:
        if frozenset([c1, c2]) in links or c1 == c2:    # tr(B*dX'*C*dX): B[c2, c1] C[r1, r2]
            b, cc, transposed = matrix(c2, c1), matrix(r1, r2), True
        else:                                           # tr(B*dX*C*dX): B[c2, r1] C[c1, r2]
            b, cc, transposed = matrix(c2, r1), matrix(c1, r2), False
    except LookupError:
        return None
    if scalars:
        b = simplify(ir.einsum([(b, (0, 1))] + _relabelled(scalars), (0, 1)))
    return c, b, cc, transposed


def _components(factors: list) -> list[list]:
    """The factors grouped by shared indices."""
    groups: list[list] = []
    for f in factors:
        joined = [g for g in groups if any(set(f[1]) & set(i) for _, i in g)]
        merged = [f] + [x for g in joined for x in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return groups


def _relabelled(factors: list) -> list:
    """Scalar factors with indices moved clear of 0 and 1."""
    return [(a, tuple(i + 2 + 1000 for i in idx)) for a, idx in factors]


def _bilinear(term: Expr, dx: Expr) -> Expr:
    """B_t with the quadratic term t = dx'*B_t*dx: the term's contraction with its two dx
    removed where it has that form (first dx on the left), else half its Hessian."""
    c, t = split_coefficient(term)
    if t.op == "einsum":
        factors, out = list(zip(t.args, t.data[0])), t.data[1]
        at = [n for n, (a, _) in enumerate(factors) if a is dx]
        if len(at) == 2 and not out:
            (i,), (j,) = factors[at[0]][1], factors[at[1]][1]
            rest = [fi for n, fi in enumerate(factors) if n not in at]
            if i != j and not any(dx is a or ir.depends_on(a, dx.data[0]) for a, _ in rest):
                if rest:
                    return simplify(ir.scale(c, ir.einsum(rest, (i, j))))
    hessian = derivative(derivative(term, dx), dx)
    return simplify(ir.scale(Fraction(1, 2), hessian))


def _simplified(state: Expr) -> Expr:
    """The state simplified around its placeholders, which stand as opaque variables: what
    d(u) differentiates stays u as written (simplify might turn u into -(-u), whose
    expansion would give back d(u))."""
    pending = [n for n in ir.topological(state) if n.op == PLACEHOLDER]
    opaque = {p: ir.var(f"<d{k}>", p.shape) for k, p in enumerate(pending)}
    back = {v: p for p, v in opaque.items()}
    return ir.substitute(simplify(ir.substitute(state, opaque)), back)


def _named(node: Expr, name: str) -> Expr:
    return Expr("named", (node,), name, node.shape)


def _linear(u: Expr, name: str) -> bool:
    """Whether d(u) is a linear move (a sum, a merge, a product with one factor that depends
    on the variable): made on the way, not a step of its own."""
    if u.op in ("sum", "merge"):
        return True
    return u.op == "einsum" and sum(ir.depends_on(a, name) for a in u.args) == 1


def _rule_text(rules: dict) -> str:
    names = [RULES[k] for k in rules if k not in ("chain", "linear")]
    if not names:
        return RULES["linear"]
    text = "; ".join(names)
    return f"{CHAIN}: {text}" if "chain" in rules else text


def _parts(note) -> tuple:
    if isinstance(note, Mono):
        return note.coef, note.scalars, note.chain, note.den
    if isinstance(note, IndexForm):
        raise MatdiffError("this derivative has no matrix form to show its steps in")
    return Fraction(1), (), (note,), ()


def _as_term(note) -> Mono:
    return note if isinstance(note, Mono) else Mono(Fraction(1), (note,))

