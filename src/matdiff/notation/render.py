"""Rendering the notation tree as text (the input syntax, so it parses back), LaTeX or Unicode.

One precedence-driven printer serves all three; a style says how each construct is spelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from .. import budget
from ..core.ir import PRIMITIVES
from ..syntax.greek import LETTER_OF
from .tree import (
    EYE,
    MATRIX_ONES,
    ONES,
    Call,
    Hadamard,
    Indexed,
    IndexForm,
    Mono,
    Num,
    Power,
    Sum,
    Sym,
    Transpose,
    Where,
    whole_power,
)

# precedence levels: a child printed below the level its parent needs gets parentheses
SUM, NEG, PRODUCT, POWER, POSTFIX, ATOM = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Style:
    name: str
    times: str          # matrix / scalar product
    hadamard: str
    divide_elementwise: str
    minus: str
    lparen: str
    rparen: str


TEXT = Style("text", "*", ".*", "./", "-", "(", ")")
LATEX = Style("latex", " ", r" \odot ", r" \oslash ", "-", r"\left(", r"\right)")
UNICODE = Style("unicode", "", " ⊙ ", " ⊘ ", "−", "(", ")")

# the primitives say how they print; the rest are sugar that raising writes back
_LATEX_FUNCTIONS = {name: p.latex for name, p in PRIMITIVES.items() if name.isalpha()} | {
    "tr": r"\operatorname{tr}", "diag": r"\operatorname{diag}", "sum": r"\operatorname{sum}",
    "vec": r"\operatorname{vec}", "d": r"\mathrm{d}"}  # d(u): a differential (explain/)
_DIRECTION = re.compile(r"d([A-Za-z]|" + "|".join(LETTER_OF) + r")(?:_(\d+))?")  # dX, dSigma
_SUBSCRIPT = dict(zip("0123456789aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
_SIZED_SYMBOLS = {"eye": "I", "commutation": "K"}
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_UNICODE_FRACTIONS = {Fraction(1, 2): "½", Fraction(1, 3): "⅓", Fraction(1, 4): "¼",
                      Fraction(3, 4): "¾", Fraction(2, 3): "⅔"}




_NORMS = {"norm1": "1", "norm2": "2"}  # the reader's \|x\|_1 and \|x\|_2 (vectors)


def _latex_name(name: str) -> str:
    """Sigma_2 -> \\Sigma_{2}, mu -> \\mu, S2 -> S_{2}, rate -> \\mathit{rate}."""
    head, underscore, tail = name.partition("_")
    if underscore:
        subscript = "\\" + tail if tail in LETTER_OF else tail
        return f"{_latex_name(head)}_{{{subscript}}}"
    if name in LETTER_OF:
        return "\\" + name
    if len(name) > 1 and name[1:].isdigit():
        return f"{name[0]}_{{{name[1:]}}}"
    return name if len(name) == 1 else rf"\mathit{{{name}}}"


def _unicode_name(name: str) -> str:
    """Sigma_2 -> Σ₂, mu_k -> μ_k."""
    head, underscore, tail = name.partition("_")
    head = LETTER_OF.get(head, head)
    if not underscore:
        return head
    tail = LETTER_OF.get(tail, tail)
    return head + ("".join(_SUBSCRIPT[c] for c in tail) if tail.isdigit() else "_" + tail)


def render(node, style: Style = TEXT) -> str:
    return _Printer(style).show(node)


def renderer(style: Style = TEXT) -> Callable[[object], str]:
    """``render`` for many notes that share parts (names.py measures each candidate): a node
    met again is not printed again."""
    return _Printer(style).show


def _inline_chain(chain: tuple) -> list:
    """A product nested in a product's chain needs no parentheses: (A*B)*x is A*B*x; and a
    factor repeated side by side is a power: inv(S)*inv(S) is inv(S)^2, A^2*A is A^3."""
    out = []
    for f in chain:
        if isinstance(f, Mono) and f.coef == 1 and not f.den and not f.scalars:
            for g in _inline_chain(f.chain):
                _append_factor(out, g)
        else:
            _append_factor(out, f)
    return out


def _append_factor(out: list, f) -> None:
    if out:
        base, k = whole_power(out[-1], False)
        f_base, j = whole_power(f, False)
        if base == f_base:
            out[-1] = Power(base, Num(Fraction(k + j)), False)
            return
    out.append(f)


def _is_ones_term(t) -> bool:
    """c*vector(1) or c*a*matrix(1): a constant array that a sum's other terms give a size."""
    return isinstance(t, Mono) and t.chain in ((ONES,), (MATRIX_ONES,))


class _Printer:
    def __init__(self, style: Style):
        self.s = style
        self.memo: dict[int, tuple] = {}
        self.limit = budget.current().output_length

    # a node printed, and its precedence level
    def show(self, node) -> str:
        # a printer may serve several calls (renderer()): each is held to the limit of its time
        self.limit = budget.current().output_length
        text = self.print(node)[0]
        if len(text) > self.limit:
            raise budget.LimitError(f"the printed result is over {self.limit:,} characters",
                                    "output_length")
        return text

    def at_least(self, node, level: int) -> str:
        text, own = self.print(node)
        return text if own >= level else f"{self.s.lparen}{text}{self.s.rparen}"

    def print(self, node) -> tuple[str, int]:
        done = self.memo.get(id(node))
        if done is not None and done[0] is node:
            return done[1]
        budget.check_time("printing the result")
        method = getattr(self, "p_" + type(node).__name__)
        text = method(node)
        if len(text[0]) > self.limit:
            raise budget.LimitError(f"the printed result is over {self.limit:,} characters",
                                    "output_length")
        self.memo[id(node)] = (node, text)  # shared subtrees print once
        return text

    # atoms ------------------------------------------------------------------------------------
    def p_Num(self, node: Num) -> tuple[str, int]:
        v = node.value
        sign = self.s.minus if v < 0 else ""
        a = abs(v)
        if a.denominator == 1:
            return f"{sign}{a.numerator}", NEG if v < 0 else ATOM
        if self.s is LATEX:
            return f"{sign}\\frac{{{a.numerator}}}{{{a.denominator}}}", NEG if v < 0 else ATOM
        if self.s is UNICODE and a in _UNICODE_FRACTIONS:
            return f"{sign}{_UNICODE_FRACTIONS[a]}", NEG if v < 0 else ATOM
        return f"{sign}{a.numerator}/{a.denominator}", NEG if v < 0 else PRODUCT

    def p_Sym(self, node: Sym) -> tuple[str, int]:
        if self.s is TEXT:
            return node.name, ATOM
        if node == EYE:
            return "I", ATOM
        if node.name == "pi":
            return (r"\pi" if self.s is LATEX else "π"), ATOM
        direction = _DIRECTION.fullmatch(node.name)
        if direction and self.s is LATEX:  # dX, dX_2: the differential of X
            base, k = direction.groups()
            return rf"\mathrm{{d}}{_latex_name(base)}" + (f"_{{{k}}}" if k else ""), ATOM
        if direction:
            base, k = direction.groups()
            return "d" + _unicode_name(base + (f"_{k}" if k else "")), ATOM
        return (_latex_name(node.name) if self.s is LATEX else _unicode_name(node.name)), ATOM

    def p_Call(self, node: Call) -> tuple[str, int]:
        s = self.s
        if node == ONES and s is not TEXT:
            return (r"\mathbf{1}" if s is LATEX else "𝟏"), ATOM
        if node.fn in ("vector", "matrix") and s is not TEXT:
            return self.filled(node)
        args = ", ".join(self.show(a) for a in node.args)
        if s is TEXT:
            return f"{node.fn}({args})", ATOM
        if node.fn in _SIZED_SYMBOLS:  # eye(n) is I_n, commutation(m, n) is K_{m,n}
            return self.sized(_SIZED_SYMBOLS[node.fn], [a.name for a in node.args]), ATOM
        if node.fn == "kron":
            left, right = (self.at_least(a, POSTFIX) for a in node.args)
            times = r" \otimes " if s is LATEX else " ⊗ "
            return f"{left}{times}{right}", PRODUCT
        (arg,) = node.args
        if node.fn == "inv":
            mark = PRIMITIVES["inv"].latex if s is LATEX else "⁻¹"
            return f"{self.at_least(arg, ATOM)}{mark}", POSTFIX
        if node.fn == "sqrt":
            return (rf"\sqrt{{{args}}}" if s is LATEX else f"√({args})"), ATOM
        if node.fn == "abs" and s is LATEX and not node.arg_rank:
            return rf"\left|{args}\right|", ATOM
        if node.fn in _NORMS and s is LATEX:
            which = "F" if node.arg_rank == 2 else _NORMS[node.fn]
            return rf"\left\|{args}\right\|_{{{which}}}", ATOM
        name = _LATEX_FUNCTIONS.get(node.fn, node.fn) if s is LATEX else node.fn
        return f"{name}{s.lparen}{args}{s.rparen}", ATOM

    def filled(self, node: Call) -> tuple[str, int]:
        r"""vector(c, n) is c 1_n and matrix(c, m, n) is c 1_m 1_n': in LaTeX
        c\,\mathbf{1}_{m} \mathbf{1}_{n}^{\top}, sizes where the form states them."""
        latex = self.s is LATEX
        sizes = [a.name for a in node.args[1:]]
        one = r"\mathbf{1}" if latex else "𝟏"
        ones = [self.sized(one, [d]) if d else one
                for d in (sizes or [None] * (1 if node.fn == "vector" else 2))]
        if len(ones) == 2:
            ones[1] += r"^{\top}" if latex else "ᵀ"
        ones = (" " if latex else "").join(ones)
        if isinstance(node.args[0], Num) and node.args[0].value == 1:
            return ones, ATOM if node.fn == "vector" else PRODUCT
        return (rf"{self.show(node.args[0])}\," if latex else f"{self.show(node.args[0])}·") \
            + ones, PRODUCT

    def sized(self, symbol: str, dims: list[str]) -> str:
        if self.s is LATEX:
            return f"{symbol}_{{{','.join(d.replace('*', '') for d in dims)}}}"
        if all(c in _SUBSCRIPT for d in dims for c in d) and len(dims) == 1:
            return symbol + "".join(_SUBSCRIPT[c] for c in dims[0])
        return f"{symbol}({', '.join(dims)})"

    def p_Transpose(self, node: Transpose) -> tuple[str, int]:
        s = self.s
        if s is TEXT:
            return f"{self.at_least(node.arg, ATOM)}'", POSTFIX
        if isinstance(node.arg, Call) and node.arg.fn == "inv":
            base = self.at_least(node.arg.args[0], ATOM)
            return base + (r"^{-\top}" if s is LATEX else "⁻ᵀ"), POSTFIX
        mark = r"^{\top}" if s is LATEX else "ᵀ"
        return f"{self.at_least(node.arg, ATOM)}{mark}", POSTFIX

    def p_Power(self, node: Power) -> tuple[str, int]:
        s = self.s
        e = node.exponent
        inverse, k = whole_power(node, False)
        if s is not TEXT and inverse is not node and isinstance(inverse, Call) \
                and inverse.fn == "inv":  # inv(A)^2 is A^{-2}, not A^{-1}^{2}
            inner = self.at_least(inverse.args[0], ATOM)
            if s is LATEX:
                return f"{inner}^{{-{k}}}", POSTFIX
            return inner + f"-{k}".translate(_SUPERSCRIPT), POSTFIX
        # in LaTeX and Unicode a base that ends in a superscript (A^T, A^{-1}) takes
        # parentheses: A^{\top}^{2} is no formula, and Aᵀ² reads as one superscript
        base = self.at_least(node.base, POSTFIX if s is TEXT else ATOM)
        if s is TEXT:
            op = ".^" if node.elementwise else "^"
            exponent, level = self.print(e)
            if level >= ATOM:  # x^2, a^b, 2^n(...) need no parentheses; x^(-1), a^(b*c) do
                return f"{base}{op}{exponent}", POWER
            return f"{base}{op}({exponent})", POWER
        if s is LATEX:
            exponent = self.show(e)
            if node.elementwise:
                return rf"{base}^{{\circ {exponent}}}", POWER
            return f"{base}^{{{exponent}}}", POWER
        if isinstance(e, Num) and e.value.denominator == 1:
            sup = str(e.value).translate(_SUPERSCRIPT)
            return f"{base}{'∘' if node.elementwise else ''}{sup}", POWER
        return f"{base}{'.^' if node.elementwise else '^'}({self.show(e)})", POWER

    # products and sums -------------------------------------------------------------------------
    def join_product(self, parts: list[str]) -> str:
        if self.s is LATEX:  # a thin space after a differential: dS S^{-1}, not dSS^{-1}
            out = parts[0]
            for before, p in zip(parts, parts[1:]):
                out += r"\, " + p if before.startswith(r"\mathrm{d}") else " " + p
            return out
        if self.s is not UNICODE:
            return self.s.times.join(parts)
        out = parts[0]
        for p in parts[1:]:
            tight = out.endswith(("ᵀ", "¹")) or p.startswith("(")
            out += p if tight else " " + p
        return out

    def coefficient(self, a: Fraction) -> str:
        if a.denominator == 1 or self.s is not TEXT:
            return self.show(Num(a))
        return f"{a.numerator}/{a.denominator}"

    def p_Mono(self, node: Mono) -> tuple[str, int]:
        s = self.s
        factors = list(node.scalars) + _inline_chain(node.chain)
        den = list(node.den)
        negative, a = node.coef < 0, abs(node.coef)
        if not factors and not den:
            return self.print(Num(node.coef))
        if s is TEXT and a.denominator != 1 and len(factors) == 1 and not den \
                and isinstance(factors[0], (Sym, Call, Power, Transpose)):
            den, a = [Num(Fraction(a.denominator))], Fraction(a.numerator)  # k/2, not 1/2*k
        if den and a.denominator != 1:  # y/(2*sqrt(a)), not 1/2*y/sqrt(a)
            den, a = [Num(Fraction(a.denominator))] + den, Fraction(a.numerator)
        lone = len(factors) == 1 and a == 1 and not den  # -y.*z needs no parentheses
        parts = [self.at_least(f, PRODUCT if lone else POWER) for f in factors]
        if a != 1 or not parts:
            parts.insert(0, self.coefficient(a))
        if len(parts) == 1 and not den and not negative:
            return self.print(factors[0]) if factors else self.print(Num(a))
        text, level = self.join_product(parts), PRODUCT
        if den:
            below = [self.at_least(d, POWER) for d in den]
            if s is LATEX:  # the fraction holds the scalars; the product follows it
                n_chain = len(_inline_chain(node.chain))
                top, rest = parts[:len(parts) - n_chain], parts[len(parts) - n_chain:]
                if not top and len(rest) == 1:  # \frac{\exp(x)}{...}: one factor goes on top
                    top, rest = [self.show(_inline_chain(node.chain)[0])], []
                frac = rf"\frac{{{self.join_product(top or ['1'])}}}" \
                    rf"{{{self.join_product(below)}}}"
                text, level = (self.join_product([frac] + rest), PRODUCT) if rest \
                    else (frac, ATOM)
            elif len(den) == 1:
                text = f"{text}/{below[0]}"
            else:
                text = f"{text}/{s.lparen}{self.join_product(below)}{s.rparen}"
        if negative:
            return f"{s.minus}{text}", NEG
        return text, level

    def p_Hadamard(self, node: Hadamard) -> tuple[str, int]:
        s = self.s
        factors = node.factors
        if node.den and factors in ((ONES,), (MATRIX_ONES,)):  # 1./x: the 1 broadcasts
            factors = (Num(Fraction(1)),)
        text = s.hadamard.join(self.at_least(f, POWER) for f in factors)
        for d in node.den:
            text += f"{s.divide_elementwise}{self.at_least(d, POWER)}"
        return text, PRODUCT

    def p_Sum(self, node: Sum) -> tuple[str, int]:
        s = self.s
        out = ""
        terms = node.terms
        if not all(_is_ones_term(t) for t in terms):  # 1 - s: the language broadcasts the 1
            terms = tuple(Mono(t.coef, t.scalars, (), t.den) if _is_ones_term(t) else t
                          for t in terms)
        for n, term in enumerate(terms):
            negative = term.coef < 0
            body = self.at_least(Mono(abs(term.coef), term.scalars, term.chain, term.den), PRODUCT)
            if n == 0:
                out = f"{s.minus}{body}" if negative else body
            else:
                out += f" {s.minus} {body}" if negative else f" + {body}"
        return out, SUM

    def p_Where(self, node: Where) -> tuple[str, int]:
        bound = ", ".join(f"{self.p_Sym(Sym(n))[0]} = {self.show(v)}"
                          for n, v in zip(node.names, node.values))
        glue = {"text": " where ", "latex": r" \quad\text{where } ", "unicode": "  where "}
        return f"{self.show(node.body)}{glue[self.s.name]}{bound}", SUM

    # index notation ------------------------------------------------------------------------------
    def p_Indexed(self, node: Indexed) -> tuple[str, int]:
        s = self.s
        if node.base is None:
            if s is LATEX:
                return rf"\delta_{{{''.join(node.indices)}}}", ATOM
            return f"delta({','.join(node.indices)})", ATOM
        if s is LATEX:
            text, level = self.print(node.base)
            base = text if level >= ATOM else rf"\left({text}\right)"
            return f"{base}_{{{''.join(node.indices)}}}", ATOM
        base = self.at_least(node.base, ATOM)
        return f"{base}[{','.join(node.indices)}]", ATOM

    def p_IndexForm(self, node: IndexForm) -> tuple[str, int]:
        body = self.show(Sum(node.terms)) if len(node.terms) != 1 else self.show(node.terms[0])
        if self.s is LATEX:
            return rf"D_{{{''.join(node.out)}}} = {body}", SUM
        return f"D[{','.join(node.out)}] = {body}", SUM
