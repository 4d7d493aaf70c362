"""Whether printed notation fixes the size of every ``eye``, ``vector(c)`` and ``matrix(c)`` in it.

The printed text must read back without knowing its shape, so ``syntax.types.with_stated_sizes``
reads it back and writes a size into each constant that its surroundings leave open. Most
results leave none open (``inv(eye + B*B')``: B fixes the eye), and reading a long text back
costs more than printing it. This is the same shape reasoning on the notation tree: the typing
rules of the language (a sum's terms agree, a product's inner sides agree, a transpose swaps),
with a union-find over dimensions in which a declared dimension or a stated size is known.

It is a sufficient test, never a guess: it only merges what the reader merges, so ``True``
means the reader finds every size too; constructs it does not model are of unknown shape, and a
constant it cannot show fixed answers ``False`` (then the text is read back as before).
"""

from __future__ import annotations

from .tree import (
    MATRIX_ONES,
    ONES,
    Call,
    Hadamard,
    Mono,
    Num,
    Power,
    Sum,
    Sym,
    Transpose,
    Where,
    children,
)

_ONE = -1  # the thin side of a vector: a column is (d, _ONE), a row (_ONE, d)
_SAME_SHAPE = frozenset({"exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "abs", "sign",
                         "relu", "d"})
_TO_SCALAR = frozenset({"sum", "norm1", "norm2"})
_SQUARE_TO_SCALAR = frozenset({"det", "logdet", "tr"})
_FILLED = {"vector": 1, "matrix": 2}  # its rank, sized by its arguments after the fill value


def sizes_fixed(note, variables: dict) -> bool:
    """Whether every unsized constant in ``note`` has its size fixed by the notation itself
    (``variables``: name -> object with ``.shape``, the declarations the text reads back with)."""
    try:
        return _Shapes(variables).fixed(note)
    except RecursionError:  # deeper than this walk goes: let the reader decide
        return False


class _Shapes:
    def __init__(self, variables: dict):
        self.parent: list[int] = []
        self.known: list[bool] = []
        self.open: list[int] = []  # the dimensions of the unsized constants
        self.shapes = {name: tuple(decl.shape) for name, decl in variables.items()}
        self.dimension_names = {d for shape in self.shapes.values() for d in shape
                                if isinstance(d, str)}
        self.bindings: dict[str, object] = {}
        self.bound: dict[str, tuple | None] = {}
        self.binding_now: set[str] = set()

    def fixed(self, note) -> bool:
        self.type_of(note)
        return all(self.known[self.find(d)] for d in self.open)

    # -- dimensions --

    def dim(self, known: bool) -> int:
        self.parent.append(len(self.parent))
        self.known.append(known)
        return len(self.parent) - 1

    def find(self, d: int) -> int:
        while self.parent[d] != d:
            self.parent[d] = self.parent[self.parent[d]]
            d = self.parent[d]
        return d

    def unify(self, a: int, b: int) -> None:
        if a == _ONE or b == _ONE:
            return
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            self.known[a] = self.known[a] or self.known[b]

    def constant(self, rank: int) -> tuple:
        """An unsized vector(c) (rank 1) or matrix(c) (rank 2): its open sides."""
        dims = [self.dim(False) for _ in range(rank)]
        self.open.extend(dims)
        return (dims[0], _ONE) if rank == 1 else tuple(dims)

    def eye(self) -> tuple:
        side = self.dim(False)
        self.open.append(side)
        return (side, side)

    # -- shapes: None unknown, () scalar, (rows, cols) an array --

    def type_of(self, note) -> tuple | None:
        method = getattr(self, "t_" + type(note).__name__, None)
        if method is None:
            for c in children(note):  # its constants still count, unfixed
                self.type_of(c)
            return None
        return method(note)

    def t_Num(self, note: Num) -> tuple:
        return ()

    def t_Sym(self, note: Sym) -> tuple | None:
        name = note.name
        if name == "eye":
            return self.eye()
        if name == "pi":
            return ()
        if name in self.bindings:
            return self.binding(name)
        shape = self.shapes.get(name)
        if shape is None:
            return () if name in self.dimension_names else None
        if len(shape) > 2:
            return None
        known = tuple(self.dim(True) for _ in shape)
        return known if len(known) != 1 else (known[0], _ONE)

    def binding(self, name: str) -> tuple | None:
        """A where-name's shape: the reader writes its value out at each use, so each use
        shares the value's known sides only (its open ones are fixed by the value alone)."""
        if name not in self.bound:
            if name in self.binding_now:
                return None
            self.binding_now.add(name)
            self.bound[name] = self.type_of(self.bindings[name])
            self.binding_now.discard(name)
        shape = self.bound[name]
        if not shape:
            return shape
        return tuple(d if d == _ONE or self.known[self.find(d)] else self.dim(False)
                     for d in shape)

    def t_Where(self, note: Where) -> tuple | None:
        self.bindings.update(zip(note.names, note.values))
        return self.type_of(note.body)

    def t_Transpose(self, note: Transpose) -> tuple | None:
        arg = self.type_of(note.arg)
        return arg if not arg else arg[::-1]

    def t_Call(self, note: Call) -> tuple | None:
        fn = note.fn
        if fn == "eye":
            return (self.dim(True),) * 2 if note.args else self.eye()
        if fn in _FILLED:
            rank = _FILLED[fn]
            if len(note.args) == 1:
                return self.constant(rank)
            sides = tuple(self.dim(True) for _ in range(rank))
            return sides if rank == 2 else (sides[0], _ONE)
        args = [self.type_of(a) for a in note.args]
        if len(args) != 1 or args[0] is None:
            return None
        (arg,) = args
        if fn in _SAME_SHAPE:
            return arg
        if fn in _TO_SCALAR:
            return ()
        if fn in _SQUARE_TO_SCALAR or fn == "inv":
            if not self.square(arg):
                return None
            return () if fn != "inv" else arg
        if fn == "diag":
            if len(arg) == 2 and _ONE in arg:  # a vector: its side, twice
                side = arg[0] if arg[1] == _ONE else arg[1]
                return (side, side)
            if self.square(arg):
                return (arg[0], _ONE)
        return None

    def square(self, shape: tuple) -> bool:
        if len(shape) != 2 or _ONE in shape:
            return False
        self.unify(*shape)
        return True

    def t_Power(self, note: Power) -> tuple | None:
        base, exponent = self.type_of(note.base), self.type_of(note.exponent)
        if base is None or exponent != ():
            return None
        if note.elementwise or base == ():
            return base
        return base if self.square(base) else None

    def t_Hadamard(self, note: Hadamard) -> tuple | None:
        factors = note.factors
        if note.den and factors in ((ONES,), (MATRIX_ONES,)):  # printed 1./x: a scalar 1
            factors = (Num(1),)
        return self.agree([self.type_of(f) for f in factors + note.den])

    def t_Sum(self, note: Sum) -> tuple | None:
        terms = note.terms
        if not all(_is_ones_term(t) for t in terms):  # printed as the scalar c (broadcast)
            terms = tuple(Mono(t.coef, t.scalars, (), t.den) if _is_ones_term(t) else t
                          for t in terms)
        return self.agree([self.type_of(t) for t in terms])

    def agree(self, shapes: list) -> tuple | None:
        """The shape of operands that broadcast scalars and otherwise have equal shapes."""
        arrays = [s for s in shapes if s]
        if not arrays:
            return () if None not in shapes else None
        first = arrays[0]
        for other in arrays[1:]:
            if (first[0] == _ONE) != (other[0] == _ONE) or \
                    (first[1] == _ONE) != (other[1] == _ONE):
                return None  # a column beside a row: not text this printer writes
        for other in arrays[1:]:
            self.unify(first[0], other[0])
            self.unify(first[1], other[1])
        return first

    def t_Mono(self, note: Mono) -> tuple | None:
        scalars = [self.type_of(s) for s in note.scalars + note.den]
        product = self.product([self.type_of(f) for f in note.chain])
        return product if all(s == () for s in scalars) else None

    def product(self, shapes: list) -> tuple | None:
        """Matrix products left to right; scalar factors scale; an unknown factor breaks the
        chain (its neighbours are not merged across it)."""
        result: tuple | None = ()
        for s in shapes:
            if s is None:
                result = None
            elif s == ():
                continue
            elif result is None:
                continue
            elif result == ():
                result = s
            else:
                (rows, inner), (other, cols) = result, s
                if (inner == _ONE) != (other == _ONE):
                    return None
                self.unify(inner, other)
                result = (rows, cols) if (rows, cols) != (_ONE, _ONE) else ()
        return result


def _is_ones_term(t) -> bool:
    return isinstance(t, Mono) and t.chain in ((ONES,), (MATRIX_ONES,))
