"""The vec form of a derivative: the matrix J with d vec(F) = J d vec(X) (Magnus–Neudecker,
column-major vec), in notation that reads back.

For a derivative tensor D of shape shape(F) + shape(X), J[(i, j), (k, l)] = D[i, j, k, l] with
each pair merged column-major, i.e. ``numpy.reshape(D, (rows, cols), order="F")``:

* a vector F of a vector x: the Jacobian itself; a scalar f: the gradient as a row, G' or
  vec(G)'; a matrix F of a scalar: vec(dF/dx);
* a Hessian with respect to a vector: H itself; with respect to a matrix: the symmetric
  nq×nq matrix H with d²f = vec(dX)'*H*vec(dX) (matdiff's Hessian tensor is symmetric, so its
  reshaping is already the H = (B + B')/2 of the second identification theorem);
* three or four axes: the Kronecker reading of :mod:`matdiff.notation.kron`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from ..core.ir import Dim, Expr, add, dim_product, merge
from ..core.simplify import simplify
from ..errors import MatdiffError
from ..syntax.types import with_stated_sizes
from .kron import NoKroneckerForm, kron_form, sized
from .raising import NoMatrixForm, matrix_raiser
from .render import LATEX, TEXT, UNICODE, render
from .sizes import sizes_fixed
from .tree import Call, IndexForm, Mono, Num, Sum, Sym
from .tree import transpose as transposed_note


@dataclass(frozen=True)
class VecForm:
    """J with d vec(F) = J d vec(X): ``text`` (input syntax), ``latex``, ``unicode``,
    ``shape`` (rows, columns)."""

    note: object
    shape: tuple[Dim, Dim]
    variables: dict | None = None  # the declarations, to state the sizes of ones and eye

    @property
    def text(self) -> str:
        text = render(self.note, TEXT)
        if self.variables is None or sizes_fixed(self.note, self.variables):
            return text
        # a row or column of J is a vector in the language: its one dimension is the other
        try:
            return with_stated_sizes(text, self.variables,
                                     tuple(d for d in self.shape if d != 1))
        except ValueError:  # a product dimension that inference cannot split: as printed
            return text

    @property
    def latex(self) -> str:
        return render(self.note, LATEX)

    @property
    def unicode(self) -> str:
        return render(self.note, UNICODE)

    def in_style(self, style: str) -> str:
        """J in "text", "latex" or "unicode"."""
        return render(self.note, {"text": TEXT, "latex": LATEX, "unicode": UNICODE}[style])


def vec_form(derivative: Expr, notation: Callable[[], object], nrow: int,
             reading_order: dict[str, int]) -> VecForm | str:
    """The vec form of ``derivative`` (its first ``nrow`` axes belong to F, or to X for a
    Hessian), or a one-line reason why it has none. ``notation()`` gives the derivative's own
    notation tree (its matrix form where it has one)."""
    ncol = derivative.ndim - nrow
    shape = (dim_product(*derivative.shape[:nrow]), dim_product(*derivative.shape[nrow:]))
    if derivative.op == "zero":  # the zero matrix, its size stated
        zero = Call("matrix", (Num(Fraction(0)),) + tuple(Sym(str(d)) for d in shape))
        return VecForm(zero if derivative.ndim else Num(Fraction(0)), shape)
    inner = _unvec(derivative, nrow)
    if inner is not None:  # F = vec(G): d vec(F) = d vec(G), so J is G's
        raise_matrix = matrix_raiser(reading_order)
        return vec_form(inner, lambda: raise_matrix(inner), inner.ndim - ncol, reading_order)
    if nrow == 0 and ncol == 2 and not _has_matrix_form(notation):
        # a gradient G with no notation of its own may be the reshaping of a vector (the
        # gradient of vec(X)'*W*vec(X)): its row vec(G)' simplified and raised as it is
        try:
            vec_g = matrix_raiser(reading_order)(simplify(merge(derivative, (2,))))
        except NoMatrixForm:
            return "the derivative has no matrix form"
        return VecForm(transposed_note(vec_g), shape)
    try:
        if nrow + ncol > 2 and nrow:
            return VecForm(kron_form(derivative, nrow, ncol,
                                     matrix_raiser(reading_order, sized_ones=True)),
                           shape)
        notation = notation()
        if isinstance(notation, IndexForm):
            return "the derivative has no matrix form"
        notation = sized(notation, derivative.shape) if derivative.ndim else notation
        if nrow == 0:                       # a scalar's gradient, as a row
            g = notation if ncol < 2 else Call("vec", (notation,))
            return VecForm(transposed_note(g) if ncol else g, shape)
        if ncol == 0 and nrow == 2:
            return VecForm(Call("vec", (notation,)), shape)
        return VecForm(notation, shape)
    except NoKroneckerForm as why:
        return f"no Kronecker form: {why}"
    except NoMatrixForm:
        return "no Kronecker form: a Kronecker operand has no matrix form"


def _has_matrix_form(notation: Callable[[], object]) -> bool:
    try:
        return not isinstance(notation(), IndexForm)
    except MatdiffError:
        return False


def _unvec(d: Expr, nrow: int) -> Expr | None:
    """G where ``d`` is the derivative of F = vec(G) (its one row axis merges all of G's
    axes, the variable's axes are left alone); None otherwise."""
    ncol = d.ndim - nrow
    if nrow != 1:
        return None
    terms = list(zip(d.data, d.args)) if d.op == "sum" else [(Fraction(1), d)]
    if not all(t.op == "merge" and t.data == (t.args[0].ndim - ncol,) + (1,) * ncol
               for _, t in terms):
        return None
    return add([(c, t.args[0]) for c, t in terms])


def transposed(note):
    """The transpose of a matrix in notation, distributed: (A*B)' = B'*A',
    kron(A, B)' = kron(A', B'), commutation(m, n)' = commutation(n, m)."""
    if isinstance(note, Sum):
        return Sum(tuple(transposed(t) for t in note.terms))
    if isinstance(note, Mono):
        chain = tuple(transposed(f) for f in reversed(note.chain))
        return Mono(note.coef, note.scalars, chain, note.den)
    if isinstance(note, Call) and note.fn == "kron":
        return Call("kron", tuple(transposed(a) for a in note.args))
    if isinstance(note, Call) and note.fn == "commutation":
        return Call("commutation", note.args[::-1])
    diagonal = isinstance(note, Call) and note.fn == "diag" and isinstance(
        note.args[0], Call) and note.args[0].fn == "vec"
    if diagonal or note == Sym("eye") or isinstance(note, Call) and note.fn == "eye":
        return note
    return transposed_note(note)
