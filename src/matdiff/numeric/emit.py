"""Emit: a lowered program (:mod:`.compile`) written as a self-contained Python function for
NumPy, JAX or PyTorch: imports, a docstring with the formula, shape checks, one named temporary
per line. The same text is what ``r.source()`` prints and what ``r.compile()`` executes (with,
beside it, the body alone for inputs the call path has already checked).

A pairwise contraction becomes the cheapest kernel its index pattern allows: a matrix product
of (reshaped, transposed) views where an index is summed, a broadcast product where none is,
``einsum`` only where an index is both kept and summed; ``inv(A)*B`` a solve.
"""

from __future__ import annotations

import keyword
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from ..core.ir import PRIMITIVES, Dim, DimProduct, Expr, shape_text, topological, variables
from .plan import Program, solve_side, symmetric

BACKENDS = ("numpy", "jax", "torch")
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def has_scipy() -> bool:
    """Whether SciPy is installed, without importing it: only code using it imports it."""
    import importlib.util
    return importlib.util.find_spec("scipy") is not None


@dataclass
class _Dialect:
    """How one backend spells the few operations the kernels need."""

    name: str
    mod: str
    imports: list[str]
    scipy: bool = False

    def transpose(self, a: str, perm: Sequence[int]) -> str:
        if list(perm) == [1, 0]:
            return f"{a}.T"
        verb = "permute" if self.name == "torch" else "transpose"
        return f"{a}.{verb}({', '.join(map(str, perm))})"

    def reduce_sum(self, a: str, axes: Sequence[int]) -> str:
        word = "dim" if self.name == "torch" else "axis"
        return f"{a}.sum({word}={tuple(axes)})"

    def creation(self, fn: str, args: str, like: str | None) -> str:
        if self.name == "numpy" or like is None:
            return f"{self.mod}.{fn}({args})"
        if self.name == "jax":
            return f"{self.mod}.{fn}({args}, dtype={like}.dtype)"
        return f"{self.mod}.{fn}({args}, dtype={like}.dtype, device={like}.device)"

    def cho_solve(self, chol: str, matrix: str, b: str, vector: bool) -> str:
        if self.name == "torch":
            if vector:
                return f"torch.cholesky_solve({b}[:, None], {chol})[:, 0]"
            return f"torch.cholesky_solve({b}, {chol})"
        if self.name == "jax":
            return f"jsl.cho_solve(({chol}, True), {b})"
        if self.scipy:
            return f"cho_solve(({chol}, True), {b}, check_finite=False)"
        return f"np.linalg.solve({matrix}, {b})"

    def cho_inverse(self, chol: str, matrix: str, n: str) -> str:
        if self.name == "torch":
            return f"torch.cholesky_inverse({chol})"
        if self.name == "jax":
            return f"jsl.cho_solve(({chol}, True), jnp.eye({n}, dtype={chol}.dtype))"
        if self.scipy:
            return f"_cho_inverse({chol})"
        return f"np.linalg.inv({matrix})"


def dialect(backend: str) -> _Dialect:
    if backend == "numpy":
        scipy = has_scipy()
        imports = ["import math", "", "import numpy as np"]
        return _Dialect("numpy", "np", imports, scipy)
    if backend == "jax":
        return _Dialect("jax", "jnp", ["import math", "", "import jax.numpy as jnp",
                                       "import jax.scipy.linalg as jsl"])
    if backend == "torch":
        return _Dialect("torch", "torch", ["import math", "", "import torch"])
    raise ValueError(backend)


_CHO_INVERSE = '''

def _cho_inverse(chol):
    """inv(S) from the lower Cholesky factor of S (numpy's, zero above the diagonal): LAPACK
    potri fills the lower triangle and leaves those zeros, so one transposed add completes it."""
    inverse, info = lapack.dpotri(chol, lower=1)
    if info:
        raise np.linalg.LinAlgError("the matrix is singular")
    inverse += np.tril(inverse, -1).T
    return inverse
'''


@dataclass
class Function:
    """What to emit: the outputs (lowered) and the function's name, formula and inputs."""

    name: str
    program: Program
    shapes: Mapping[str, tuple[Dim, ...]]
    doc: str = ""
    reserved: set[str] = field(default_factory=set)


def function_source(fn: Function, backend: str) -> tuple[str, _Dialect]:
    """The text of the function (without imports), and the dialect it needs."""
    d = dialect(backend)
    writer = _Writer(fn, d)
    return writer.text(), d


def module_source(functions: Sequence[Function], backend: str, extra: str = "") -> str:
    """A self-contained module: imports, helpers, every function, then ``extra``."""
    bodies, d = [], dialect(backend)
    for fn in functions:
        text, d = function_source(fn, backend)
        bodies.append(text)
    return _module(bodies, d, extra)


def _module(bodies: Sequence[str], d: _Dialect, extra: str = "") -> str:
    helpers = _CHO_INVERSE if any("_cho_inverse(" in b for b in bodies) else ""
    imports = list(d.imports)
    scipy_names = [n for n, used in (("cho_solve", "cho_solve((" in "".join(bodies)),
                                     ("lapack", bool(helpers))) if used]
    if d.name == "numpy" and scipy_names:
        imports.append(f"from scipy.linalg import {', '.join(scipy_names)}")
    head = "\n".join(imports)
    return head + "\n" + helpers + "\n\n" + "\n\n\n".join(bodies) + extra


def build(fn: Function, backend: str) -> Callable:
    """The function, executed from its source."""
    return build_pair(fn, backend)[0]


def build_pair(fn: Function, backend: str, inputs: Sequence[str] | None = None
               ) -> tuple[Callable, Callable | None]:
    """The checked function and, with ``inputs`` (the positional order), its trusted twin:
    the same body without conversions or shape checks, its sizes written in as numbers, for
    arrays already known to be float64 of the planned shapes. One source, one exec."""
    writer = _Writer(fn, dialect(backend))
    bodies = [writer.text()]
    fast = None
    if inputs is not None and set(writer.params) <= set(inputs):
        fast = "_trusted_" + fn.name
        bodies.append(writer.trusted_text(fast, inputs))
    source = _module(bodies, writer.d)
    namespace: dict = {}
    exec(compile(source, f"<matdiff {fn.name}>", "exec"), namespace)  # noqa: S102
    return namespace[fn.name], namespace[fast] if fast else None


def parameters(roots: Sequence[Expr], shapes: Mapping[str, tuple[Dim, ...]]) -> list[str]:
    """The inputs computing ``roots`` needs: the variables they read, then any that only give
    a size."""
    nodes = {id(n): n for r in roots for n in topological(r)}.values()
    used = {n.data[0] for n in nodes if n.op == "var"}
    names = [n for n in shapes if n in used]
    bound = {d for n in names for d in shapes[n]}
    needed_dims = {d for node in nodes for d in node.shape if isinstance(d, str)}
    needed_dims |= {node.data for node in nodes if node.op == "dim"}
    for d in sorted(needed_dims - bound):
        carrier = next((n for n in shapes if d in shapes[n]), None)
        if carrier is not None and carrier not in names:
            names.append(carrier)
            bound |= set(shapes[carrier])
    return names


class _Writer:
    def __init__(self, fn: Function, d: _Dialect):
        self.fn, self.d, self.p = fn, d, fn.program
        self.params = parameters(self.p.outputs, fn.shapes)
        taken = set(self.params) | {"np", "jnp", "jsl", "torch", "math", "lapack", "cho_solve"}
        self.dim_names: dict[str, str] = {}
        for name in {dd for n in self.params for dd in fn.shapes[n] if isinstance(dd, str)}:
            ident = name if name.isidentifier() and not keyword.iskeyword(name) else "d"
            while ident in taken:
                ident = "size_" + ident
            self.dim_names[name] = ident
            taken.add(ident)
        self.like = next((n for n in self.params if fn.shapes[n]), None)
        self.names: dict[int, str] = {}
        self.owned: set[int] = set()    # nodes whose array this function allocated itself
        self.uses = Counter(id(a) for n in self.p.nodes for a in n.args)
        self.uses.update(id(o) for o in self.p.outputs)
        # computed symmetric matrices: their transpose is themselves, so none is written
        # (a transposed operand costs a matrix product or a broadcast its memory order)
        self.symmetric: set[str] = set()
        self.lines: list[str] = []
        self.checked = 0    # self.lines[:checked] convert and check the inputs
        self.count = 0

    # naming ---------------------------------------------------------------------------------

    def size(self, dim: Dim) -> str:
        if isinstance(dim, DimProduct):     # the m*n rows of kron(A, B): folded at run time
            return "(" + " * ".join(self.size(f) for f in dim.factors) + ")"
        return str(dim) if isinstance(dim, int) else self.dim_names[dim]

    def shape(self, dims: Sequence[Dim]) -> str:
        items = [self.size(x) for x in dims]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    def ref(self, node: Expr) -> str:
        return self.names[id(node)]

    def assign(self, node: Expr, expr: str, hint: str = "t") -> None:
        self.count += 1
        name = f"{hint}{self.count}"
        self.lines.append(f"{name} = {expr}")
        self.names[id(node)] = name
        if symmetric(node):
            self.symmetric.add(name)

    def permuted(self, x: str, perm: Sequence[int]) -> str:
        """``x`` with its axes in order ``perm``: itself where that is no change."""
        if list(perm) == sorted(perm) or (list(perm) == [1, 0] and x in self.symmetric):
            return x
        return self.d.transpose(x, perm)

    # the function ---------------------------------------------------------------------------

    def text(self) -> str:
        self.checks()
        self.checked = len(self.lines)
        for node in self.p.nodes:
            if id(node) not in self.names:
                self.node(node)
        result = self.result()
        signature = ", ".join(self.params + ["**unused"])
        doc = self.fn.doc.strip().replace('"""', "'''")
        sizes = ", ".join(f"{k}={v}" for k, v in sorted(self.p.sizes.items()))
        doc += ("\n\n" if doc else "") + f"Contraction order chosen for {sizes or 'these sizes'}."
        lines = ['"""' + doc + '\n"""'] + self.lines + [f"return {result}"]
        return f"def {self.fn.name}({signature}):\n{_indented(lines)}"

    def result(self) -> str:
        outs = [self.ref(o) for o in self.p.outputs]
        return outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"

    def trusted_text(self, name: str, inputs: Sequence[str]) -> str:
        """After :meth:`text`: the body alone, for inputs already converted and checked; the
        sizes are the planned ones, so they are numbers here, not reads of shapes."""
        sizes = [f"{ident} = {self.p.size_of(dim)}" for dim, ident in self.dim_names.items()]
        lines = sizes + self.lines[self.checked:] + [f"return {self.result()}"]
        return f"def {name}({', '.join(inputs)}):\n{_indented(lines)}"

    def checks(self) -> None:
        bound: set[str] = set()
        convert = {"numpy": "np.asarray({}, dtype=float)", "jax": "jnp.asarray({})",
                   "torch": "torch.as_tensor({})"}[self.d.name]
        for name in self.params:
            shape = self.fn.shapes[name]
            if not shape and self.d.name == "torch" and self.like:
                self.lines.append(f"{name} = torch.as_tensor({name}, dtype={self.like}.dtype, "
                                  f"device={self.like}.device)")
            else:
                self.lines.append(f"{name} = {convert.format(name)}")
            expected = self.shape(shape) if shape else "()"
            fresh = [(k, x) for k, x in enumerate(shape) if isinstance(x, str) and x not in bound]
            fresh = list({x: (k, x) for k, x in reversed(fresh)}.values())[::-1]
            if fresh or not shape:
                self.lines.append(f"if {name}.ndim != {len(shape)}:")
                self.lines.append(f"    raise ValueError(f\"{name} should be "
                                  f"{shape_text(shape)}, got shape {{tuple({name}.shape)}}\")")
            for k, x in fresh:
                self.lines.append(f"{self.size(x)} = {name}.shape[{k}]")
                bound.add(x)
            if len(fresh) < len(shape):
                self.lines.append(f"if {name}.shape != {expected}:")
                self.lines.append(f"    raise ValueError(f\"{name} should be {shape_text(shape)}"
                                  f" = {{{expected}}}, got shape {{tuple({name}.shape)}}\")")

    # one node -------------------------------------------------------------------------------

    def node(self, node: Expr) -> None:
        op, d = node.op, self.d
        if op not in ("num", "const") and _constant(node):
            self.names[id(node)] = _number_literal(_fold(node))  # log(2*pi) once, here
        elif op == "var":
            self.names[id(node)] = node.data[0]
        elif op == "num":
            self.names[id(node)] = _number(node.data)
        elif op == "const":
            self.names[id(node)] = "math.pi"
        elif op == "dim":
            self.names[id(node)] = self.size(node.data)
        elif op == "zero":
            self.assign(node, d.creation("zeros", self.shape(node.shape), self.like), "zero")
        elif op == "ones":
            self.assign(node, d.creation("ones", self.size(node.shape[0]), self.like), "ones")
        elif op == "delta":
            self.assign(node, d.creation("eye", self.size(node.shape[0]), self.like), "eye")
        elif op == "sum":
            self.linear_sum(node)
        elif op == "einsum":
            self.contraction(node)
            if len(node.args) >= 2 and node.ndim and any(idx for idx in node.data[0]):
                self.owned.add(id(node))
        elif op == "embed":
            self.embed(node)
        elif op == "cholesky":
            fn = {"numpy": "np.linalg.cholesky", "jax": "jnp.linalg.cholesky",
                  "torch": "torch.linalg.cholesky"}[d.name]
            self.assign(node, f"{fn}({self.ref(node.args[0])})", "chol")
        elif op == "logdet_chol":
            m = d.mod
            self.assign(node, f"2.0 * {m}.sum({m}.log({m}.diagonal({self.ref(node.args[0])})))",
                        "logdet")
        elif op == "inv":
            self.inverse(node)
        elif op == "merge":
            self.merge(node)
        else:
            self.primitive(node)

    def linear_sum(self, node: Expr) -> None:
        """A sum of tensors accumulates into a term that is a temporary of this function used
        nowhere else (``t6 += t12``): one array and one pass fewer than ``t6 + t12``."""
        # a transposed view last, so the result takes the layout of a contiguous term
        terms = sorted(zip(node.data, node.args), key=lambda t: _is_view(t[1]))
        base = next((k for k, (c, t) in enumerate(terms) if c == 1 and self.reusable(t)), None)
        if node.ndim and (len(terms) > 1 or terms[0][0] != 1):
            self.owned.add(id(node))
        if not node.ndim or base is None:
            self.assign(node, _linear([c for c, _ in terms], [self.ref(a) for _, a in terms]))
            return
        _, first = terms.pop(base)
        name = self.ref(first)
        for c, t in terms:
            body = self.ref(t) if abs(c) == 1 else f"{float(abs(c))!r} * {self.ref(t)}"
            self.lines.append(f"{name} {'-' if c < 0 else '+'}= {body}")
        self.names[id(node)] = name
        self.symmetric.discard(name)
        if symmetric(node):
            self.symmetric.add(name)

    def reusable(self, node: Expr) -> bool:
        """Whether ``node``'s array may be written over: a fresh array (a product, a sum, an
        elementwise function's value; never an input, a view or a broadcast) read only once."""
        return id(node) in self.owned and self.uses[id(node)] == 1

    def primitive(self, node: Expr) -> None:
        op, d, m = node.op, self.d, self.d.mod
        args = [self.ref(a) for a in node.args]
        constant = not node.shape and not variables(node)
        if op == "pow":
            base, exponent = args
            p = node.args[1].data if node.args[1].op == "num" else None
            sqrt = "math.sqrt" if constant else f"{m}.sqrt"
            if p == 2:
                expr = f"{base} * {base}"
            elif p == 3:
                expr = f"{base} * {base} * {base}"
            elif p == -1:
                expr = f"1.0 / {base}"
            elif p == -2:
                expr = f"1.0 / ({base} * {base})"
            elif p == Fraction(1, 2):
                expr = f"{sqrt}({base})"
            elif p == Fraction(-1, 2):
                expr = f"1.0 / {sqrt}({base})"
            else:
                expr = f"{base} ** {exponent}"
        elif op == "relu":
            expr = (f"torch.clamp({args[0]}, min=0.0)" if d.name == "torch"
                    else f"{m}.maximum({args[0]}, 0.0)")
        elif PRIMITIVES[op].elementwise:
            expr = f"{'math' if constant and op != 'sign' else m}.{op}({args[0]})"
        elif op == "det":
            expr = {"numpy": "np.linalg.det", "jax": "jnp.linalg.det",
                    "torch": "torch.linalg.det"}[d.name] + f"({args[0]})"
        elif op == "logdet":
            sign, value = f"sign{self.count + 1}", f"logabs{self.count + 1}"
            self.lines.append(f"{sign}, {value} = {m}.linalg.slogdet({args[0]})")
            nan = "math.nan" if d.name != "torch" else f"torch.full_like({value}, math.nan)"
            expr = f"{m}.where({sign} > 0, {value}, {nan})"
        elif op == "mpow":  # A^k by repeated squaring, as the IR keeps it one node
            expr = {"numpy": "np.linalg.matrix_power", "jax": "jnp.linalg.matrix_power",
                    "torch": "torch.linalg.matrix_power"}[d.name] + \
                f"({args[0]}, {int(node.args[1].data)})"
        else:
            raise NotImplementedError(op)
        self.assign(node, expr, "e" if PRIMITIVES[op].elementwise else "t")
        if PRIMITIVES[op].elementwise and node.ndim:
            self.owned.add(id(node))

    def merge(self, node: Expr) -> None:
        """Groups of axes flattened column-major (vec, kron): each group's axes reversed, so
        that its first runs fastest, then one C-order reshape."""
        perm, start = [], 0
        for g in node.data:
            perm.extend(range(start + g - 1, start - 1, -1))
            start += g
        x = self.ref(node.args[0])
        if perm != sorted(perm):
            x = self.d.transpose(x, perm)
        self.assign(node, f"{x}.reshape{self.shape(node.shape)}")

    def inverse(self, node: Expr) -> None:
        if id(node) in self.p.solved:
            return      # only ever applied to something: written as solves by its users
        a = node.args[0]
        if len(node.args) == 2:
            expr = self.d.cho_inverse(self.ref(node.args[1]), self.ref(a), self.size(a.shape[0]))
        else:
            expr = f"{self.d.mod}.linalg.inv({self.ref(a)})"
        self.assign(node, expr, "inv")

    # contractions ---------------------------------------------------------------------------

    def contraction(self, node: Expr) -> None:
        factor_idx, out = node.data
        args = [self.ref_or_none(a) for a in node.args]
        if all(not idx for idx in factor_idx):
            self.assign(node, " * ".join(args))
        elif len(node.args) == 1:
            self.assign(node, self.unary(args[0], factor_idx[0], out))
        elif len(node.args) == 2:
            self.assign(node, self.binary(node))
        else:
            self.assign(node, self.einsum(args, factor_idx, out))

    def einsum(self, args: Sequence[str], factor_idx, out) -> str:
        letters = {i: _LETTERS[n] for n, i in
                   enumerate(dict.fromkeys(i for idx in factor_idx for i in idx))}
        spec = ",".join("".join(letters[i] for i in idx) for idx in factor_idx)
        spec += "->" + "".join(letters[i] for i in out)
        return f"{self.d.mod}.einsum('{spec}', {', '.join(args)})"

    def unary(self, a: str, idx, out) -> str:
        if len(set(idx)) != len(idx):
            return self.einsum([a], (idx,), out)
        summed = [k for k, i in enumerate(idx) if i not in out]
        if summed:
            a = self.d.reduce_sum(a, summed)
            idx = tuple(i for i in idx if i in out)
        return self.permuted(a, [idx.index(i) for i in out])

    def moved(self, a: str, idx, out) -> bool:
        """Whether aligning ``a`` to ``out`` transposes it."""
        present = [i for i in out if i in idx]
        return self.permuted(a, [idx.index(i) for i in present]) != a

    def aligned(self, a: str, idx, out) -> str:
        """``a`` (indices ``idx``, all in ``out``) with its axes in out's order and a new axis
        for each index it lacks, ready to broadcast."""
        present = [i for i in out if i in idx]
        a = self.permuted(a, [idx.index(i) for i in present])
        if len(present) < len(out):
            a = f"{a}[{', '.join(':' if i in idx else 'None' for i in out)}]"
        return a

    def binary(self, node: Expr) -> str:
        (ia, ib), out = node.data
        a, b = node.args
        if out and out[0] in ib and out[0] not in ia:   # the factor the result starts with first
            (ia, ib), (a, b) = (ib, ia), (b, a)
        ra, rb = self.ref_or_none(a), self.ref_or_none(b)
        if not ia or not ib:
            scalar, (x, ix) = (ra, (rb, ib)) if not ia else (rb, (ra, ia))
            if scalar == "(-1.0)":
                return f"-{self.aligned(x, ix, out)}"
            return f"{scalar} * {self.aligned(x, ix, out)}"
        sa, sb = set(ia), set(ib)
        contracted = [i for i in dict.fromkeys(ia) if i in sb and i not in out]
        batch = [i for i in out if i in sa and i in sb]
        unique = len(sa) == len(ia) and len(sb) == len(ib)
        if not unique or (sa | sb) - set(out) - set(contracted):
            return self.einsum([ra, rb], (ia, ib), out)
        if not contracted:
            x, y = self.aligned(ra, ia, out), self.aligned(rb, ib, out)
            if self.d.name == "numpy" and len(out) >= 2 and (self.moved(ra, ia, out)
                                                            or self.moved(rb, ib, out)):
                # NumPy lays the result out like its operands ("K"): a transposed one would
                # leave it transposed, and slow for everything that reads it after
                return f"np.multiply({x}, {y}, order='C')"
            return f"{x} * {y}"
        if batch:
            return self.einsum([ra, rb], (ia, ib), out)
        left = [i for i in out if i in sa]
        right = [i for i in out if i in sb]
        dims = dict(zip(ia, a.shape)) | dict(zip(ib, b.shape))
        side_a = solve_side(node, a) if a.op == "inv" and id(a) in self.p.solved else None
        side_b = solve_side(node, b) if b.op == "inv" and id(b) in self.p.solved else None
        amat = self.matrix(ra, ia, left, contracted, dims)
        bmat = self.matrix(rb, ib, contracted, right, dims)
        if side_a:
            product = self.solve(a, ia[0] != left[0], bmat, vector=not right)
        elif side_b:
            # B*inv(A) = solve(A', B')': a row vector needs no transposes
            flip = ib[0] == right[0]
            if not left:
                product = self.solve(b, not flip, amat, vector=True)
            else:
                product = self.solve(b, not flip, f"{amat}.T", vector=False) + ".T"
        else:
            product = f"{amat} @ {bmat}"
        order = left + right
        if len(left) > 1 or len(right) > 1:
            product = f"({product}).reshape{self.shape([dims[i] for i in order])}"
        perm = [order.index(i) for i in out]
        return product if perm == sorted(perm) else self.d.transpose(f"({product})", perm)

    def ref_or_none(self, node: Expr) -> str:
        return self.names.get(id(node), "")

    def matrix(self, x: str, idx, rows, cols, dims) -> str:
        """``x`` as a matrix (vector where ``rows`` or ``cols`` is empty) for a product."""
        if not x:
            return x
        order = list(rows) + list(cols)
        x = self.permuted(x, [idx.index(i) for i in order])
        if len(rows) > 1 or len(cols) > 1:
            shape = [" * ".join(self.size(dims[i]) for i in part) for part in (rows, cols) if part]
            x = f"{x}.reshape({', '.join(shape)}{',' if len(shape) == 1 else ''})"
        return x

    def solve(self, inverse: Expr, transposed: bool, b: str, vector: bool) -> str:
        """inv(A)*b (or inv(A)'*b), written as a solve."""
        a = inverse.args[0]
        if len(inverse.args) == 2:      # posdef: the shared Cholesky factor
            return self.d.cho_solve(self.ref(inverse.args[1]), self.ref(a), b, vector)
        matrix = self.ref(a)
        if transposed and not symmetric(a):
            matrix = f"{matrix}.T"
        return f"{self.d.mod}.linalg.solve({matrix}, {b})"

    def embed(self, node: Expr) -> None:
        core_out, out = node.data
        core = self.ref(node.args[0])
        unique = tuple(dict.fromkeys(out))
        value = self.aligned(core, core_out, unique) if core_out else core
        is_output = any(node is o for o in self.p.outputs)
        if unique == out and not is_output:     # a broadcast: a view, never written out
            self.assign(node, f"{self.d.mod}.broadcast_to({value}, {self.shape(node.shape)})")
            return
        if self.d.name == "numpy":
            self.assign(node, f"np.zeros({self.shape(node.shape)})", "t")
            name = self.names[id(node)]
            if unique == out:
                self.lines.append(f"{name}[...] = {value}")
            else:
                letters = {i: _LETTERS[n] for n, i in enumerate(unique)}
                spec = "".join(letters[i] for i in out) + "->" + "".join(letters[i]
                                                                         for i in unique)
                self.lines.append(f"np.einsum('{spec}', {name})[...] = {value}")
            return
        # JAX and torch: the value times the identities it sits on, broadcast
        dims = dict(zip(out, node.shape))
        full = self.aligned(core, core_out, out) if core_out else core
        terms = [full]
        for i in unique:
            positions = [k for k, j in enumerate(out) if j == i]
            for q in positions[1:]:
                eye = self.d.creation("eye", self.size(dims[i]), self.like)
                pattern = [":" if k in (positions[0], q) else "None" for k in range(len(out))]
                terms.append(f"{eye}[{', '.join(pattern)}]")
        product = " * ".join(terms)
        self.assign(node, f"{self.d.mod}.broadcast_to({product}, {self.shape(node.shape)})")


def _indented(lines: Sequence[str]) -> str:
    return "\n".join("    " + line if line else "" for line in "\n".join(lines).split("\n"))


def _constant(node: Expr) -> bool:
    """A scalar computed from numbers and named constants only (no variable, no size)."""
    return not node.shape and all(n.op not in ("var", "dim") and not n.shape
                                  for n in topological(node))


def _fold(node: Expr) -> float:
    from .codegen import compile_numpy
    return float(compile_numpy(node, {})())


def _number_literal(value: float) -> str:
    return repr(value) if value >= 0 or value != value else f"({value!r})"


def _is_view(node: Expr) -> bool:
    return node.op == "einsum" and len(node.args) == 1 and node.args[0].ndim == node.ndim


def _number(c: Fraction) -> str:
    value = float(c)
    return repr(value) if value >= 0 else f"({value!r})"


def _linear(coefs: Sequence[Fraction], terms: Sequence[str]) -> str:
    parts = []
    for c, t in zip(coefs, terms):
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        body = t if mag == 1 else f"{float(mag)!r} * {t}"
        parts.append((sign, body))
    first_sign, first = parts[0]
    text = ("-" if first_sign == "-" else "") + first
    for sign, body in parts[1:]:
        text += f" {sign} {body}"
    return text


_CONVERSIONS = {
    "numpy": ("def _backend(a):\n    return a\n", "def _numpy(a):\n    return np.asarray(a)\n"),
    "jax": ("def _backend(a):\n    return jnp.asarray(a)\n",
            "def _numpy(a):\n    return np.asarray(a)\n"),
    "torch": ("def _backend(a):\n    return torch.as_tensor(a)\n",
              "def _numpy(a):\n    return a.detach().cpu().numpy() if torch.is_tensor(a) "
              "else np.asarray(a)\n"),
}


def gradient_check_source(value: str, gradient: str, wrt: str,
                          shapes: Mapping[str, tuple[Dim, ...]],
                          props: Mapping[str, frozenset[str]], convention: str | None,
                          backend: str) -> str:
    """A ``check_gradient()`` helper for a module holding ``value`` and ``gradient``: the
    gradient against central differences of the value along random directions (symmetric or
    diagonal ones where the variable is), at a random valid point."""
    def kind(name: str) -> str:
        p = props.get(name, frozenset())
        for k in ("posdef", "diagonal", "symmetric", "positive"):
            if k in p:
                return k
        return "plain"

    def shape(name: str) -> str:
        items = [str(d) if isinstance(d, int) else "size" for d in shapes[name]]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    direction_kind = kind(wrt) if convention in ("sym", "diagonal") else "plain"
    if direction_kind in ("posdef", "symmetric"):
        direction_kind = "symmetric"
    point = "".join(f"\n        {n!r}: _draw(rng, {shape(n)}, {kind(n)!r}),"
                    for n in shapes)
    numpy_import = "" if backend == "numpy" else "\nimport numpy as np\n"
    to_backend, to_numpy = _CONVERSIONS[backend]
    return f'''

{numpy_import}
{to_backend}

{to_numpy}

def _draw(rng, shape, kind):
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    a = rng.standard_normal(shape)
    if kind == "posdef":
        return a @ a.T / shape[0] + np.eye(shape[0])
    if kind == "symmetric":
        return (a + a.T) / 2
    if kind == "diagonal":
        return np.diag(np.diag(a))
    return a


def check_gradient(size=3, seed=0, step=1e-6, trials=3):
    """Max relative error of {gradient}() against central differences of {value}() along
    random directions, at a random point (float64; under JAX enable jax_enable_x64)."""
    rng = np.random.default_rng(seed)
    point = {{{point}
    }}
    args = {{k: _backend(v) for k, v in point.items()}}
    exact_gradient = _numpy({gradient}(**args))
    worst = 0.0
    for _ in range(trials):
        direction = _draw(rng, np.shape(point[{wrt!r}]), {direction_kind!r})
        plus = dict(args, {wrt}=_backend(point[{wrt!r}] + step * direction))
        minus = dict(args, {wrt}=_backend(point[{wrt!r}] - step * direction))
        numeric = (_numpy({value}(**plus)) - _numpy({value}(**minus))) / (2 * step)
        exact = float(np.sum(exact_gradient * direction))
        worst = max(worst, abs(numeric - exact) / max(abs(exact), abs(numeric), 1e-12))
    return worst
'''
