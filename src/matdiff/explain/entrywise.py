"""The entrywise view: a derivative is the array of partial derivatives, [df/dS]_ij = df/dS_ij.

On a small random instance, central finite differences along single entries stand beside the
formula's entries, so the two readings of "the derivative with respect to a matrix" (the
matrix of partial derivatives, and the linear map read off df = tr(G'*dS)) are seen to be the
same numbers. For a symmetric variable each convention is one way of moving the entries
S_ij and S_ji, and its table shows what that way gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.ir import Dim, dim_names, dim_size
from ..errors import MatdiffError
from ..numeric.check import STEP, draw_point, finite_difference
from ..numeric.codegen import compile_numpy
from .entries import entry_labels_of, index_form

MAX_ENTRIES = 81   # rows of one table: a 4-axis tensor at size 3
MAX_SIZE = 9       # dimensions of the instance: one digit per index in the labels
DRAWS = 20         # instances tried before giving up on one where everything is finite
ROUNDING = 1e-15   # relative rounding of one evaluation of f
STEPS = (STEP, STEP / 10, STEP / 100)

# convention -> (what its table shows, how the finite differences move the entries of {x})
CONVENTIONS = {
    None: ("", "each entry of {x} moves alone"),
    "full": ("G", "all entries independent: {x}_ij moves alone, breaking the symmetry"),
    "sym": ("sym(G) = (G + G')/2", "the default, the gradient on symmetric matrices: "
            "{x}_ij and {x}_ji move by h/2 each"),
    "cookbook": ("G + G' - diag(diag(G))", "the Matrix Cookbook's: one variable standing in "
                 "both places, {x}_ij and {x}_ji move together by h"),
    "diagonal": ("diag(G)", "the gradient on diagonal matrices: only the diagonal entry "
                 "{x}_ii moves"),
}
FACTOR_TWO = ("why the factor 2 off the diagonal: the cookbook's variable s = {x}_ij = {x}_ji "
              "stands in two places, so df/ds = G_ij + G_ji = 2*sym(G)_ij; on the diagonal it "
              "stands once, and G_ii = sym(G)_ii")


@dataclass(frozen=True)
class Table:
    """One convention's entries: finite differences and the formula, each of the derivative's
    shape (shape(F) + shape(X), as ``r.numpy()`` gives in the default layout)."""

    convention: str | None
    title: str
    perturbation: str
    finite_differences: np.ndarray = field(repr=False)
    formula: np.ndarray = field(repr=False)
    resolution: float  # what the differences cannot resolve: their change when h halves,
    #                    plus the rounding of f over the step
    step: float

    @property
    def difference(self) -> np.ndarray:
        return self.formula - self.finite_differences

    @property
    def max_difference(self) -> float:
        return float(np.max(np.abs(self.difference), initial=0.0))


@dataclass(repr=False)
class Entrywise:
    """``r.entrywise()``: the index form and, per convention, the table of partial derivatives
    by finite differences beside the formula's entries. ``text``, ``latex``, ``markdown``,
    ``to_dict()``; indices count from 1 in every rendering, as in the mathematics."""

    label: dict[str, str]        # style -> "[df/dS]_ij = df/dS_ij"
    index: dict[str, str]        # style -> the formula's entry in index notation
    where: dict[str, str]        # style -> "f = ..." where the formula names f, else ""
    point: dict[str, np.ndarray]
    size: int
    seed: int
    tables: list[Table]
    index_note: object = field(repr=False)   # the entry's notation tree
    bound: object = field(repr=False)      # Where  # the names it uses (f, s...) and their values
    entry_labels: dict[str, Callable[[tuple[int, ...]], str]] = field(repr=False)
    note: str | None = None      # the factor 2, for a symmetric variable
    omitted: str | None = None   # why there is no table

    @property
    def max_difference(self) -> float:
        return max((t.max_difference for t in self.tables), default=0.0)

    def __repr__(self) -> str:
        head = self.label["text"].split(" = ")[0]
        tail = f"max difference {self.max_difference:.1e}" if self.tables else "no table"
        return f"<matdiff.Entrywise {head}, size {self.size}, seed {self.seed}: {tail}>"

    # -- renderings --

    @property
    def text(self) -> str:
        lines = [f"entrywise: {self.label['text']} = {self.index['text']}"]
        if self.where["text"]:
            lines.append(f"  where {self.where['text']}")
        lines.append(f"  on a random instance (every dimension {self.size}, seed "
                     f"{self.seed}): {self._point_text()}")
        if self.omitted:
            lines.append(f"  {self.omitted}")
            return "\n".join(lines)
        lines.append(f"  central finite differences (4-point stencil, {self._steps()}) beside "
                     "the formula's entries:")
        width = max(len("entry"), *(len(self.entry_labels["text"](i)) for i in self._indices()))
        for t in self.tables:
            head = f"{t.title}: {t.perturbation}" if t.title else t.perturbation
            lines.append(f"  {head}")
            lines.append(f"    {'entry':<{width}}  {'finite difference':>17}  {'formula':>17}"
                         f"  {'difference':>10}")
            for idx in self._indices():
                lines.append(f"    {self.entry_labels['text'](idx):<{width}}  "
                             f"{_number(t.finite_differences[idx]):>17}  "
                             f"{_number(t.formula[idx]):>17}  "
                             f"{t.difference[idx]:>10.1e}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)

    @property
    def markdown(self) -> str:
        parts = [f"**Entrywise**: ${self.label['latex']} = {self.index['latex']}$"]
        if self.where["latex"]:
            parts[0] += f", where ${self.where['latex']}$"
        parts.append(f"On a random instance (every dimension {self.size}, seed {self.seed}): "
                     f"`{self._point_text()}`")
        if self.omitted:
            return "\n\n".join(parts + [self.omitted])
        parts.append(f"Central finite differences (4-point stencil, {self._steps()}) beside "
                     "the formula's entries:")
        for t in self.tables:
            head = f"**{t.title}**: {t.perturbation}" if t.title else t.perturbation
            rows = [head, "", "| entry | finite difference | formula | difference |",
                    "|---|---:|---:|---:|"]
            rows += [f"| ${self.entry_labels['latex'](i)}$ | {_number(t.finite_differences[i])} "
                     f"| {_number(t.formula[i])} | {t.difference[i]:.1e} |"
                     for i in self._indices()]
            parts.append("\n".join(rows))
        if self.note:
            parts.append(self.note)
        return "\n\n".join(parts)

    @property
    def latex(self) -> str:
        lines = [f"{self.label['latex']} = {self.index['latex']}"]
        if self.where["latex"]:
            lines[0] += rf" \quad\text{{where }} {self.where['latex']}"
        for t in self.tables:
            rows = [rf"\text{{{_latex_text(t.title or 'entry')}}} & \text{{finite difference}} "
                    r"& \text{formula} & \text{difference}"]
            rows += [f"{self.entry_labels['latex'](i)} & {_latex_number(t.finite_differences[i])}"
                     f" & {_latex_number(t.formula[i])} & {_latex_number(t.difference[i], 1)}"
                     for i in self._indices()]
            lines.append(r"\begin{array}{lrrr}" + r" \\ ".join(rows) + r"\end{array}")
        return r" \\ ".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_latex_(self) -> str:
        return rf"$$\begin{{gathered}}{self.latex}\end{{gathered}}$$"

    def to_dict(self) -> dict:
        """A JSON-able form (floats and lists; indices from 1)."""
        return {
            "label": dict(self.label), "index": dict(self.index), "where": dict(self.where),
            "size": self.size, "seed": self.seed,
            "point": {n: np.asarray(v).tolist() for n, v in self.point.items()},
            "tables": [{
                "convention": t.convention, "title": t.title, "perturbation": t.perturbation,
                "max_difference": t.max_difference, "resolution": t.resolution,
                "step": t.step,
                "entries": [{"index": [k + 1 for k in i],
                             "label": self.entry_labels["text"](i),
                             "finite_difference": float(t.finite_differences[i]),
                             "formula": float(t.formula[i]),
                             "difference": float(t.difference[i])} for i in self._indices()],
            } for t in self.tables],
            "note": self.note, "omitted": self.omitted,
        }

    def _steps(self) -> str:
        steps = [t.step for t in self.tables]
        if len(set(steps)) == 1:
            return f"step h = {steps[0]:g}"
        return "steps h = " + ", ".join(f"{h:g}" for h in steps) + " in turn"

    def _indices(self) -> list[tuple[int, ...]]:
        return list(np.ndindex(*self.tables[0].formula.shape)) if self.tables else []

    def _point_text(self) -> str:
        return ", ".join(f"{n} = {_array_text(v)}" for n, v in self.point.items())


def entrywise(r, rederive: Callable[[str], object], size: int = 3, seed: int = 0) -> Entrywise:
    """The entrywise view of the Result ``r``; ``rederive(symmetric)`` derives it again under
    another symmetric-variable convention."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise MatdiffError(f"size must be a whole number from 1 to {MAX_SIZE}, not {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MatdiffError(f"seed must be a whole number >= 0, not {seed!r}")
    if r.direction is not None:
        raise MatdiffError("the entrywise view is of the derivative itself, not of the "
                           "derivative applied to a direction", hint="derive without direction")
    shapes = {name: d.shape for name, d in r.variables.items()}
    labels, index, where, index_note, bound = index_form(r)
    entry_labels = entry_labels_of(r)
    count = _count(r.derivative.shape, size)
    point = _instance(r, shapes, size, seed)
    if count > MAX_ENTRIES:
        smaller = _count(r.derivative.shape, 2)
        hint = (f": ask for a smaller instance (size=2 gives {smaller})"
                if smaller <= MAX_ENTRIES and size > 2 else
                "; the index form says what each entry is")
        return Entrywise(labels, index, where, point, size, seed, [], index_note, bound,
                         entry_labels,
                         omitted=f"no table: it would have {count:,} entries, more than "
                                 f"{MAX_ENTRIES}{hint}")
    x = r.wrts[-1]
    tables = []
    for convention in _conventions(r):
        shown = r if convention in (None, r.convention) else \
            rederive("sym" if convention == "diagonal" else convention)
        lower = shown.function if shown.order == 1 else shown._first
        title, perturbation = CONVENTIONS[convention]
        tables.append(_table(lower, shown.derivative, shapes, point, x, convention,
                             title, perturbation.format(x=x)))
    symmetric = any(t.convention == "cookbook" for t in tables)
    return Entrywise(labels, index, where, point, size, seed, tables, index_note, bound,
                     entry_labels,
                     note=FACTOR_TWO.format(x=x) if symmetric else None)


def _conventions(r) -> list[str | None]:
    props = r.variables[r.wrts[-1]].props
    if "diagonal" in props:
        structure = ["full", "diagonal"]
    elif props & {"symmetric", "posdef"}:
        structure = ["full", "sym", "cookbook"]
    else:
        return [None]
    if r.order == 1:
        return structure
    if r.convention == "full":
        # the full Hessian depends on how f is written off the symmetric matrices
        raise MatdiffError(f"the entrywise view of a derivative of order {r.order} with respect "
                           f"to the {structure[1]} {r.wrts[-1]} perturbs it within its "
                           "structure", hint="derive with symmetric='sym'")
    return [structure[1]]


def _table(lower, derivative, shapes, point, x, convention, title, perturbation) -> Table:
    f = compile_numpy(lower, shapes)
    formula = np.asarray(compile_numpy(derivative, shapes)(**point), dtype=float)
    mode = convention or "full"
    scale = float(np.max(np.abs(np.asarray(f(**point))), initial=0.0))
    best = None
    for step in STEPS:  # the step whose differences settle best: smaller where f varies fast
        coarse = finite_difference(f, point, x, mode, step)
        fine = finite_difference(f, point, x, mode, step / 2)
        resolution = float(np.max(np.abs(coarse - fine), initial=0.0)) + \
            ROUNDING * scale / step
        if best is None or resolution < best[0]:
            best = (resolution, step, coarse)
    resolution, step, differences = best
    return Table(convention, title, perturbation, differences.reshape(formula.shape), formula,
                 resolution, step)


def _instance(r, shapes: dict[str, tuple[Dim, ...]], size: int, seed: int) -> dict:
    """A random point (declared properties respected, every symbolic dimension ``size``, a
    scalar named as a dimension its size) where f and the derivative are finite."""
    dims = {name for shape in shapes.values() for d in shape for name in dim_names(d)}
    props = {name: d.props for name, d in r.variables.items()}
    lower = r.function if r.order == 1 else r._first
    f, df = compile_numpy(lower, shapes), compile_numpy(r.derivative, shapes)
    rng = np.random.default_rng(seed)
    for draw in range(DRAWS):
        point = draw_point(shapes, props, rng, positive=draw % 2 == 1, size=size)
        point.update({n: np.float64(size) for n in point if n in dims and not shapes[n]})
        try:
            with np.errstate(all="ignore"):
                finite = np.all(np.isfinite(f(**point))) and np.all(np.isfinite(df(**point)))
        except MatdiffError:
            continue
        if finite:
            return point
    raise MatdiffError(f"no point found where the expression and its derivative are finite "
                       f"({DRAWS} random instances tried)",
                       hint="declare properties (posdef, positive...) that keep it defined")


def _count(shape: tuple[Dim, ...], size: int) -> int:
    return math.prod(dim_size(d, {n: size for n in dim_names(d)}) for d in shape)


def _number(v: float) -> str:
    return f"{float(v): .9e}"


def _latex_number(v: float, digits: int = 9) -> str:
    mantissa, _, exponent = f"{float(v):.{digits}e}".partition("e")
    return rf"{mantissa} \cdot 10^{{{int(exponent)}}}"


def _latex_text(text: str) -> str:
    return text.replace("_", r"\_")


def _array_text(v) -> str:
    v = np.asarray(v, dtype=float)
    if not v.ndim:
        return f"{float(v):.4g}"
    return np.array2string(v, precision=3, separator=", ", max_line_width=10**6,
                           suppress_small=True).replace("\n", "")
