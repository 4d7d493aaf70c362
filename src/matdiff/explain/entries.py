"""One entry of a derivative in index notation, built from its matrix notation.

``1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))`` has the (i, j) entry
``1/2*f*((inv(S)*(x - m))[i]*((x - m)'*inv(S))[j] - inv(S)[i,j])``: an entry distributes over
sums, scalar factors, transposes, Hadamard products and elementwise functions, and splits an
outer product u*v' into u[i]*v[j]. What does not split (a product A*B) keeps its matrix
notation, indexed: ``(A*B)[i,j]``. Beside it, the labels of a Result's entries:
``[df/dS]_ij = df/dS_ij``, ``dF_i/dx_j``, ``d2f/dx_i dx_j``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from ..core.ir import PRIMITIVES
from ..errors import MatdiffError
from ..notation.factor import abbreviate
from ..notation.raising import OUT_NAMES, raise_expr, raise_index_form
from ..notation.render import LATEX, TEXT, render
from ..notation.tree import (
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
)
from ..syntax.lower import lower
from ..syntax.parse import parse_typed
from ..syntax.types import parse_declarations

STYLES = {"text": TEXT, "latex": LATEX}
GLUE = {"text": " where ", "latex": r"\text{where } "}
ELEMENTWISE = frozenset(name for name, p in PRIMITIVES.items() if p.elementwise)

Rank = Callable[[object], int]  # the number of axes of a notation (0, 1 or 2)


def entry(note, indices: tuple[str, ...], rank: Rank):
    """The notation of ``note[indices]`` (one index for a vector, two for a matrix)."""
    if not indices:
        return note
    if isinstance(note, Sum):
        return Sum(tuple(_as_mono(entry(t, indices, rank)) for t in note.terms))
    if isinstance(note, Mono):
        chain = _chain_entry(note.chain, indices, rank) if note.chain else ()
        return Mono(note.coef, note.scalars, chain, note.den)
    if isinstance(note, Transpose):
        return entry(note.arg, indices[::-1], rank)
    if isinstance(note, Hadamard):
        return Mono(Fraction(1), (), tuple(entry(f, indices, rank) for f in note.factors),
                    tuple(entry(d, indices, rank) for d in note.den))
    if isinstance(note, Power) and note.elementwise:
        return Power(entry(note.base, indices, rank), note.exponent, False)
    if note in (ONES, MATRIX_ONES):
        return Num(Fraction(1))
    if isinstance(note, Call) and note.fn in ("vector", "matrix"):
        return note.args[0]
    if note == EYE or isinstance(note, Call) and note.fn == "eye":
        return Indexed(None, indices)
    if isinstance(note, Call) and note.fn in ELEMENTWISE:
        return Call(note.fn, (entry(note.args[0], indices, rank),))
    if isinstance(note, Call) and note.fn == "diag" and len(indices) == 2 and \
            rank(note.args[0]) == 1:  # diag(v)[i,j] = v[i]*delta(i,j)
        return Mono(Fraction(1), (), (entry(note.args[0], indices[:1], rank),
                                      Indexed(None, indices)))
    return Indexed(note, indices)  # a variable, inv(X), a matrix power...: indexed whole


def _chain_entry(chain: tuple, indices: tuple[str, ...], rank: Rank) -> tuple:
    """The entry of a product, as a tuple of factors: one factor's entry, or an outer product
    split u[i]*v[j], or the product indexed as a whole."""
    if len(chain) == 1:
        return (entry(chain[0], indices, rank),)
    if len(indices) == 2:
        for k in range(1, len(chain)):
            left, right = _product(chain[:k]), _product(chain[k:])
            # two one-axis factors whose product has two axes: a column times a row
            if rank(left) == 1 and rank(right) == 1:
                return (entry(left, indices[:1], rank), entry(right, indices[1:], rank))
    return (Indexed(_product(chain), indices),)


def _product(chain: tuple):
    return chain[0] if len(chain) == 1 else Mono(Fraction(1), (), chain)


def _as_mono(note) -> Mono:
    return note if isinstance(note, Mono) else Mono(Fraction(1), (), (note,))


# -- the labels and the formula's entry, for a Result --

def _blocks(r) -> list[tuple[str, int]]:
    """(name, number of axes) of F's block (named "F", "f" when scalar) and each variable's."""
    blocks = [("F", r.function.ndim)] if r.function.ndim else []
    return blocks + [(w, len(r.variables[w].shape)) for w in r.wrts]


def _split(indices: tuple, blocks: list[tuple[str, int]]) -> list[tuple]:
    out, k = [], 0
    for _, n in blocks:
        out.append(tuple(indices[k:k + n]))
        k += n
    return out


def _partial(r, indices: tuple, style: str) -> str:
    """df/dS_ij, dF_i/dx_j, d2f/dx_i dx_j (LaTeX: \\partial)."""
    blocks = _blocks(r)
    parts = _split(indices, blocks)
    f = "F" if r.function.ndim else "f"
    f_sub = parts.pop(0) if r.function.ndim else ()
    wrts = blocks[1:] if r.function.ndim else blocks
    order = f"{r.order}" if r.order > 1 else ""
    if style == "latex":
        top = (rf"\partial^{{{order}}} " if order else r"\partial ") + f + _latex_sub(f_sub)
        bottom = r"\,".join(rf"\partial {_latex_var(w)}{_latex_sub(s)}"
                            for (w, _), s in zip(wrts, parts))
        return rf"\frac{{{top}}}{{{bottom}}}"
    top = f"d{order}{f}" + _text_sub(f_sub)
    return f"{top}/" + " ".join(f"d{w}{_text_sub(s)}" for (w, _), s in zip(wrts, parts))


def _whole(r, style: str) -> str:
    """[df/dS], [d2f/dx2] (LaTeX: the fraction in brackets)."""
    f = "F" if r.function.ndim else "f"
    if style == "latex":
        order = rf"^{{{r.order}}}" if r.order > 1 else ""
        bottom = r"\,".join(rf"\partial {_latex_var(w)}" for w in r.wrts)
        return rf"\frac{{\partial{order} {f}}}{{{bottom}}}"
    if r.order == 1:
        return f"d{f}/d{r.wrts[0]}"
    if len(set(r.wrts)) == 1:
        return f"d{r.order}{f}/d{r.wrts[0]}{r.order}"
    return f"d{r.order}{f}/" + "".join(f"d{w}" for w in r.wrts)


def entry_labels_of(r) -> dict[str, Callable[[tuple[int, ...]], str]]:
    def numbers(idx: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(str(k + 1) for k in idx)
    return {"text": lambda idx: _partial(r, numbers(idx), "text"),
            "latex": lambda idx: _partial(r, numbers(idx), "latex")}


def index_form(r) -> tuple:
    """The label ``[df/dS]_ij = df/dS_ij``, the formula's (i, j) entry, and ``f = ...`` where
    that entry names the expression f."""
    names = tuple(OUT_NAMES[:r.derivative.ndim])
    label = {}
    for style in ("text", "latex"):
        whole = _whole(r, style)
        if not names:
            label[style] = whole
            continue
        sub = _text_sub(names) if style == "text" else _latex_sub(names)
        bracketed = f"[{whole}]" if style == "text" else rf"\left[{whole}\right]"
        label[style] = f"{bracketed}{sub} = {_partial(r, names, style)}"
    note, bound = _entry_note(r, names)
    index = {"text": render(note, TEXT), "latex": render(note, LATEX)}
    where = {"text": "", "latex": ""}
    if bound is not None:  # "f = ...", "s = ...": the names the entry uses
        where = {style: render(Where(Sym("_"), bound.names, bound.values), STYLES[style])
                 .split(GLUE[style], 1)[1] for style in ("text", "latex")}
    return label, index, where, note, bound


def _entry_note(r, names: tuple[str, ...]):
    """The entry's notation, and the function's where the entry writes it as f."""
    notation = r.notation
    if r.derivative.ndim > 2 or isinstance(notation, IndexForm):
        try:
            form = raise_index_form(r.derivative, r.reading_order)
        except MatdiffError:
            return Sym("(no index form)"), None  # the table still shows every entry
        return (Sum(form.terms) if len(form.terms) != 1 else form.terms[0]), None
    declare, bindings = r.declaration, ""
    if not r.function.ndim and "f" not in r.variables:
        whole = raise_expr(r.function, r.reading_order)
        short = abbreviate(notation, whole, "f")
        if short is not None:
            note = entry(short, names, _rank(r.declaration + "; f: scalar", ""))
            return note, Where(Sym("f"), ("f",), (whole,))
    named = r.form.named_notation
    if isinstance(named, Where):  # diag(s) - s*s' where s = ...: the entry of the body
        notation = named.body
        bindings = render(Where(Sym("_"), named.names, named.values), TEXT)[1:]
        return entry(notation, names, _rank(declare, bindings)), named
    return entry(notation, names, _rank(declare, bindings)), None


def _rank(declare: str, bindings: str) -> Callable[[object], int]:
    """The number of axes of a notation, by reading its text back with the ``where``
    bindings its names need (-1 where it does not read alone, as vector(1) whose size only
    its context gives)."""
    decls = parse_declarations(declare)

    def rank(note) -> int:
        try:
            root, variables = parse_typed(render(note, TEXT) + bindings, decls, "text")
            return lower(root, variables).ndim
        except MatdiffError:
            return -1
    return rank


def _text_sub(indices: tuple[str, ...]) -> str:
    if not indices:
        return ""
    return "_" + ("".join(indices) if all(len(i) == 1 for i in indices) else ",".join(indices))


def _latex_sub(indices: tuple[str, ...]) -> str:
    return f"_{{{''.join(indices)}}}" if indices else ""


def _latex_var(name: str) -> str:
    return render(Sym(name), LATEX)
