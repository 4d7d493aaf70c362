"""Shapes: what each variable is, and whether the expression fits together.

Dimensions are symbolic. Each one starts as a variable in a union-find table and is merged with
others as operators demand (the inner dimensions of a product, the two sides of a sum...). A
declared dimension (a name such as ``k`` or an integer) is fixed: it merges only with variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from .. import budget
from ..core.ir import DimProduct, dim_names, dim_product
from ..errors import MatdiffError
from .greek import ascii_name
from .parse import (
    CONSTANTS,
    FUNCTIONS,
    Binary,
    Call,
    Name,
    Node,
    Num,
    Transpose,
    Unary,
    parse_text,
    post_order,
    to_text,
)

RESERVED_NAMES = frozenset(FUNCTIONS) | frozenset(CONSTANTS)
KIND_WORDS = ("scalar", "vector", "matrix")  # by rank


def default_rank(name: str) -> int:
    """The rank an undeclared variable takes from its first letter, as matrixcalculus.org
    reads it: a-g scalars, h-z vectors, A-Z matrices."""
    first = name[0]
    return 0 if "a" <= first <= "g" else 2 if first.isupper() else 1
PROPERTIES = ("symmetric", "posdef", "diagonal", "invertible", "positive")
_IMPLIED = {"posdef": {"symmetric", "invertible"}, "diagonal": {"symmetric"}}
_NEEDS_SQUARE = {"symmetric", "posdef", "diagonal", "invertible"}
_RANK_OF = {"scalar": 0, "vector": 1, "matrix": 2}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
TANGENT_PROPERTIES = frozenset({"symmetric", "diagonal"})  # what a direction dV shares with V
FRESH_DIM_NAMES = ("n", "m", "p", "q", "r", "s", "t", "u", "v", "w")


@dataclass(frozen=True)
class Decl:
    """A variable's shape and properties. In a shape, None means "inferred from the expression"."""

    name: str
    shape: tuple  # () scalar, (d,) vector, (d1, d2) matrix; d is a name, a positive int or None
    props: frozenset[str] = frozenset()


# --- declarations --------------------------------------------------------------------------------

def parse_declarations(spec: str | dict | None) -> dict[str, Decl]:
    """Read declarations: ``"S: symmetric posdef matrix(k,k); x, m: vector(k)"`` or a dict
    ``{"S": "posdef matrix(k,k)"}`` or ``{"S": {"shape": ("k", "k"), "props": ["posdef"]}}``."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        return _declarations_from_text(spec)
    if isinstance(spec, dict):
        decls = {}
        for name, value in spec.items():
            key = ascii_name(name) if isinstance(name, str) else name  # Σ is Sigma
            decls[key] = _declaration_from_dict_entry(key, value)
        return decls
    raise MatdiffError(f"declarations must be text or a dict, not {type(spec).__name__}")


def _declarations_from_text(text: str) -> dict[str, Decl]:
    decls: dict[str, Decl] = {}
    offset = 0
    for entry in text.split(";"):
        if entry.strip():
            for decl, column in _parse_entry(entry, offset, text):
                if decl.name in decls:
                    raise MatdiffError(f"{decl.name} is declared twice", column=column,
                                       source=text)
                decls[decl.name] = decl
        offset += len(entry) + 1
    return decls


def _parse_entry(entry: str, offset: int, source: str) -> list[tuple[Decl, int]]:
    """One ``NAME, NAME: words shape`` entry; columns are 1-based within ``source``."""
    quoted = f"'{entry.strip()}'"
    names, colon, type_text = entry.partition(":")
    if not colon:
        raise MatdiffError(f"expected 'name: type' in {quoted}", column=offset + 1,
                           source=source, hint="for example x: vector(n)")
    found = []
    name_offset = offset
    for raw_name in names.split(","):
        column = name_offset + len(raw_name) - len(raw_name.lstrip()) + 1
        name = ascii_name(raw_name.strip())
        _check_variable_name(name, quoted, column, source)
        found.append((name, column))
        name_offset += len(raw_name) + 1
    shape, props = _parse_type(type_text, offset + len(names) + 1, quoted, source)
    return [(_make_decl(name, shape, props, column, source), column) for name, column in found]


def _check_variable_name(name: str, quoted: str, column: int | None, source: str | None) -> None:
    if not _NAME.fullmatch(name):
        raise MatdiffError(f"'{name}' is not a variable name in {quoted}", column=column,
                           source=source, hint="names are letters, digits and _, letter first")
    if name in FUNCTIONS or name in CONSTANTS:
        raise MatdiffError(f"{name} is a reserved name and cannot be declared in {quoted}",
                           column=column, source=source)


_TYPE_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|([0-9]+)|(\S))")  # ASCII only


def _parse_type(text: str, offset: int, quoted: str,
                source: str) -> tuple[tuple, dict[str, int | None]]:
    """``[props...] scalar | vector[(d)] | matrix[(d1,d2)]`` -> shape and {prop: column}."""
    tokens = [(m.group(m.lastindex), m.lastindex, offset + m.start(m.lastindex) + 1)
              for m in _TYPE_TOKEN.finditer(text) if m.lastindex]
    word, number, symbol = 1, 2, 3

    def fail(message: str, column: int, hint: str | None = None) -> MatdiffError:
        return MatdiffError(f"{message} in {quoted}", column=column, source=source, hint=hint)

    def column_of(position: int) -> int:
        return tokens[position][2] if position < len(tokens) else offset + len(text) + 1

    props: dict[str, int | None] = {}
    position = 0
    while position < len(tokens) and tokens[position][0] in PROPERTIES:
        props[tokens[position][0]] = tokens[position][2]
        position += 1
    if position == len(tokens):
        raise fail("missing the shape", offset + len(text) + 1,
                   "end with scalar, vector or matrix")
    shape_word, kind, shape_column = tokens[position]
    if shape_word not in _RANK_OF:
        found = f"unknown word '{shape_word}'" if kind == word else f"unexpected '{shape_word}'"
        raise fail(found, shape_column, "expected one of " + ", ".join(PROPERTIES) +
                   ", then scalar, vector or matrix")
    position += 1
    dims: list = []
    if position < len(tokens) and tokens[position][0] == "(":
        while True:
            position += 1
            if position >= len(tokens) or tokens[position][1] == symbol:
                raise fail("expected a dimension", column_of(position))
            dim, kind, column = tokens[position]
            if kind == number and len(dim) > 12:
                raise fail(f"dimension {dim[:12]}... is too large", column)
            if kind == number and int(dim) > budget.current().dimension:
                raise budget.LimitError(f"dimension {dim} in {quoted} is over the limit",
                                        "dimension", column=column, source=source)
            if kind == word and dim in RESERVED_NAMES:
                raise fail(f"'{dim}' cannot name a dimension: it is a function or constant",
                           column, "choose another name, such as n or k")
            if kind == number and int(dim) == 0:
                raise fail("dimensions must be positive", column)
            if kind == word and not _NAME.fullmatch(dim):
                raise fail(f"'{dim}' is not a dimension name", column)
            dims.append(int(dim) if kind == number else dim)
            position += 1
            if position < len(tokens) and tokens[position][0] == "*":  # m*n, as vec(X) has
                factors = [int(dim) if kind == number else dim]
                while position < len(tokens) and tokens[position][0] == "*":
                    position += 1
                    if position >= len(tokens) or tokens[position][1] == symbol:
                        raise fail("expected a dimension after '*'", column_of(position))
                    factor, factor_kind, factor_column = tokens[position]
                    if factor_kind == word and (factor in RESERVED_NAMES or
                                                not _NAME.fullmatch(factor)):
                        raise fail(f"'{factor}' is not a dimension name", factor_column)
                    if factor_kind == number and (len(factor) > 12 or int(factor) == 0):
                        raise fail("dimensions must be positive and of at most 12 digits",
                                   factor_column)
                    factors.append(int(factor) if factor_kind == number else factor)
                    position += 1
                dims[-1] = dim_product(*factors)
                size = 1
                for f in factors:
                    size = size * f if isinstance(f, int) else size
                if size > budget.current().dimension:
                    raise budget.LimitError(f"dimension {dims[-1]} in {quoted} is over the "
                                            "limit", "dimension", column=column, source=source)
            if position < len(tokens) and tokens[position][0] == ",":
                continue
            if position < len(tokens) and tokens[position][0] == ")":
                position += 1
                break
            raise fail("expected ',' or ')'", column_of(position))
    if position < len(tokens):
        leftover, _, column = tokens[position]
        hint = "properties go before the shape" if leftover in PROPERTIES else None
        raise fail(f"unexpected '{leftover}'", column, hint)
    rank = _RANK_OF[shape_word]
    if dims and len(dims) != rank:
        raise fail(f"{shape_word} takes {rank or 'no'} dimension{'s' if rank != 1 else ''}, "
                   f"not {len(dims)}", shape_column)
    return tuple(dims) if dims else (None,) * rank, props


def _declaration_from_dict_entry(name: object, value: object) -> Decl:
    if not isinstance(name, str):
        raise MatdiffError(f"declared names must be text, not {name!r}")
    if isinstance(value, Decl):
        return value
    if isinstance(value, str):
        quoted = f"'{name}: {value}'"
        _check_variable_name(name, quoted, None, None)
        shape, props = _parse_type(value, 0, quoted, value)
        return _make_decl(name, shape, props, None, value)
    if isinstance(value, dict):
        quoted = f"'{name}: {value}'"
        _check_variable_name(name, quoted, None, None)
        extra = set(value) - {"shape", "props"}
        if extra:
            raise MatdiffError(f"unknown key '{sorted(extra, key=str)[0]}' in {quoted}",
                               hint="use 'shape' and 'props'")
        shape = value.get("shape", ())
        if (not isinstance(shape, (tuple, list)) or len(shape) > 2
                or not all(_is_dimension(dim) for dim in shape)):
            raise MatdiffError(f"bad shape {shape!r} for {name}", hint="use (), ('n',) or "
                               "('m', 'n'); a dimension is a name or a positive integer")
        props = value.get("props", ())
        props = props.split() if isinstance(props, str) else props
        if not isinstance(props, (list, tuple, set, frozenset)):
            raise MatdiffError(f"props of {name} must be text or a list of properties, not "
                               f"{type(props).__name__}")
        unknown = [prop for prop in props if not isinstance(prop, str) or prop not in PROPERTIES]
        if unknown:
            raise MatdiffError(f"unknown property {unknown[0]!r} for {name}",
                               hint="known properties: " + ", ".join(PROPERTIES))
        return _make_decl(name, tuple(shape), dict.fromkeys(props), None, None)
    raise MatdiffError(f"cannot read the declaration of {name}: {value!r}",
                       hint="give text such as 'vector(n)' or a dict with 'shape' and 'props'")


def _is_dimension(dim: object) -> bool:
    if isinstance(dim, bool) or dim in RESERVED_NAMES:
        return False
    if isinstance(dim, int) and dim > budget.current().dimension:
        raise budget.LimitError(f"dimension {budget.shorten(str(dim), 30)} is over the limit",
                                "dimension")
    return dim is None or (isinstance(dim, int) and dim > 0) or (
        isinstance(dim, str) and bool(_NAME.fullmatch(dim)))


def _make_decl(name: str, shape: tuple, props: dict[str, int | None], column: int | None,
               source: str | None) -> Decl:
    """Check that square-only properties sit on a square matrix; add what they imply."""
    for prop, prop_column in props.items():
        if prop not in _NEEDS_SQUARE:
            continue
        if len(shape) != 2:
            what = "a scalar" if not shape else "a vector"
            raise MatdiffError(f"{name} is {what}; '{prop}' needs a square matrix",
                               column=prop_column or column, source=source)
        rows, cols = shape
        if rows is not None and cols is not None and rows != cols:
            raise MatdiffError(f"{name} is a {rows}×{cols} matrix; '{prop}' needs a square "
                               "matrix", column=prop_column or column, source=source)
    closed = set(props)
    for prop in props:
        closed |= _IMPLIED.get(prop, set())
    return Decl(name, shape, frozenset(closed))


def declaration_text(decls) -> str:
    """Declarations as text that :func:`parse_declarations` reads back."""
    entries = []
    for decl in decls:
        kind = ("scalar", "vector", "matrix")[len(decl.shape)]
        dims = f"({','.join(map(str, decl.shape))})" if decl.shape else ""
        props = [p for p in PROPERTIES if p in decl.props]
        entries.append(f"{decl.name}: {' '.join(props + [kind + dims])}")
    return "; ".join(entries)


# --- dimensions ----------------------------------------------------------------------------------

class _Dimensions:
    """Union-find over dimension variables; a class holds at most one fixed value.

    No path compression, so that a failed multi-step merge can be undone exactly; union by size
    keeps the trees shallow instead.
    """

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._size: list[int] = []
        self._value: list[str | int | None] = []
        self._fixed: dict[str | int, int] = {}

    def fresh(self, value: str | int | None = None) -> int:
        if value is not None and value in self._fixed:
            return self._fixed[value]
        dim = len(self._parent)
        self._parent.append(dim)
        self._size.append(1)
        self._value.append(value)
        if value is not None:
            self._fixed[value] = dim
        return dim

    def product(self, dims: list[int]) -> int:
        """A dimension that is the product of others (kron, vec); a single one is itself."""
        dims = [d for d in dims if d != _ONE]
        if len(dims) == 1:
            return dims[0]
        dim = len(self._parent)
        self._parent.append(dim)
        self._size.append(1)
        self._value.append(_Product(tuple(dims)))
        return dim

    def _same_value(self, a: object, b: object) -> bool:
        """Two fixed values that may stand in one class: equal, products of the same classes,
        or products whose factors are known and multiply to the same (3*3 is 9)."""
        if isinstance(a, _Product) and isinstance(b, _Product) and sorted(
                map(self.find, a.factors)) == sorted(map(self.find, b.factors)):
            return True
        a, b = self._known(a), self._known(b)
        return a is not None and a == b

    def _known(self, value: object) -> object:
        """A fixed value, a product resolved to dim_product of its factors' values, or None
        while a factor is unknown."""
        if not isinstance(value, _Product):
            return value
        factors = [self._known(self.value(f)) for f in value.factors]
        return None if None in factors else dim_product(*factors)

    def find(self, dim: int) -> int:
        while self._parent[dim] != dim:
            dim = self._parent[dim]
        return dim

    def value(self, dim: int) -> str | int | None:
        return self._value[self.find(dim)]

    def fixed_values(self) -> set[str | int]:
        return set(self._fixed)

    def unify(self, *pairs: tuple[int, int]) -> bool:
        """Merge each pair; if any pair holds two different fixed values, merge none.

        Two products of as many factors, not yet known to be equal, are equal factor by factor
        in merge order (kron(B', A)*vec(X): A's columns are X's rows)."""
        undo: list[tuple[int, int, str | int | None]] = []
        work = list(pairs)
        while work:
            a, b = work.pop(0)
            a, b = self.find(a), self.find(b)
            if a == b:
                continue
            va, vb = self._value[a], self._value[b]
            if None not in (va, vb) and not self._same_value(va, vb):
                if isinstance(va, _Product) and isinstance(vb, _Product) and len(
                        va.factors) == len(vb.factors):
                    work.extend(list(zip(va.factors, vb.factors)) + [(a, b)])
                    continue
                for child, root, old_value in reversed(undo):
                    self._parent[child] = child
                    self._size[root] -= self._size[child]
                    self._value[root] = old_value
                return False
            root, child = (a, b) if self._size[a] >= self._size[b] else (b, a)
            undo.append((child, root, self._value[root]))
            self._parent[child] = root
            self._size[root] += self._size[child]
            if self._value[root] is None:
                self._value[root] = self._value[child]
        return True


class _Product(NamedTuple):
    """The value of a dimension class that is a product of other classes."""
    factors: tuple[int, ...]


# --- shapes of expressions -----------------------------------------------------------------------

SCALAR, COLUMN, ROW, MATRIX = "scalar", "vector", "row vector", "matrix"


class _Type(NamedTuple):
    dims: tuple[int, ...] = ()
    row: bool = False

    @property
    def kind(self) -> str:
        if len(self.dims) == 1:
            return ROW if self.row else COLUMN
        return MATRIX if self.dims else SCALAR


_SCALAR_TYPE = _Type()
_ONE = -1  # the length-1 side of a vector, when a product treats it as a thin matrix


def infer(root: Node, decls: dict[str, Decl], source: str | None = None,
          broadcast: bool = True) -> dict[str, Decl]:
    """Set ``.shape`` and ``.row`` on every node of ``root``; return the variables it uses.

    Undeclared variables follow matrixcalculus.org: a-g scalars, h-z vectors, A-Z matrices.
    ``broadcast``: a scalar added to an array fills it (``1 + exp(x)``); off, that is an error.
    """
    return _Inference(decls, source, broadcast).run(root)


class _Inference:
    def __init__(self, decls: dict[str, Decl], source: str | None,
                 broadcast: bool = True) -> None:
        self.decls = decls
        self.source = source
        self.broadcast = broadcast
        self.dims = _Dimensions()
        self.types: dict[Node, _Type] = {}
        self.variables: dict[str, _Type] = {}
        self.by_letter: set[str] = set()  # undeclared variables typed by their first letter

    def run(self, root: Node) -> dict[str, Decl]:
        nodes = post_order(root)
        self.used = {node.name: node for node in nodes if isinstance(node, Name)}
        # a dimension's name used as a scalar is its size: (2*pi)^(-k/2) with S: matrix(k,k)
        self.dimension_names = {d for decl in self.decls.values() for d in decl.shape
                                if isinstance(d, str)}
        self.dimension_names |= {d for node in nodes if isinstance(node, Call)
                                 for size in node.sizes for d in dim_names(size)}
        self.tangent_of: dict[str, str] = {}  # direction dV -> its variable V
        self._candidates: set[str] | None = None
        for node in nodes:
            self.types[node] = self._type_of(node)
        self._refuse_clashing_dimensions()
        self.names = self._dim_names(nodes)
        for node in nodes:
            node_type = self.types[node]
            node.shape = tuple(self.names[self.dims.find(dim)] for dim in node_type.dims)
            node.row = node_type.row
        return {name: Decl(name, tuple(self.names[self.dims.find(dim)] for dim in var_type.dims),
                           self._props(name))
                for name, var_type in self.variables.items()}

    def _props(self, name: str) -> frozenset[str]:
        if name in self.decls:
            return self.decls[name].props
        base = self.tangent_of.get(name)
        if base in self.decls:
            # a direction lies in the variable's space (a symmetric S has a symmetric dS),
            # but is not posdef or invertible because S is
            return self.decls[base].props & TANGENT_PROPERTIES
        return frozenset()

    def _refuse_clashing_dimensions(self) -> None:
        """A dimension named like a vector or matrix variable would print, and read back, as
        that variable: refused (a scalar of that name is its size)."""
        for d in sorted(self.dimension_names):
            decl = self.decls.get(d)
            used = self.variables.get(d)
            if (decl is not None and decl.shape) or (used is not None and used.dims):
                node = self.used.get(d)
                rank = len(decl.shape) if decl is not None else len(used.dims)
                raise MatdiffError(f"{d} names both a dimension and a "
                                   f"{'matrix' if rank == 2 else 'vector'} variable",
                                   column=node.pos if node else None, source=self.source,
                                   hint="rename the dimension or the variable")

    def _type_of(self, node: Node) -> _Type:
        if isinstance(node, Num):
            return _SCALAR_TYPE
        if isinstance(node, Name):
            return self._name(node)
        if isinstance(node, Unary):
            return self.types[node.arg]
        if isinstance(node, Transpose):
            arg = self.types[node.arg]
            return _Type(arg.dims[::-1], row=arg.kind == COLUMN)
        if isinstance(node, Call):
            return _FUNCTION_RULES[node.fn](self, node, *(self.types[a] for a in node.args))
        if isinstance(node, Binary):
            rule = _BINARY_RULES[node.op]
            return rule(self, node, self.types[node.left], self.types[node.right])
        raise TypeError(f"not an expression node: {node!r}")

    # -- leaves --

    def _name(self, node: Name) -> _Type:
        if node.name == "pi":
            return _SCALAR_TYPE
        if node.name == "eye":
            size = self.dims.fresh()
            return _Type((size, size))
        if node.name in self.variables:
            return self.variables[node.name]
        if node.name not in self.decls and node.name in self.dimension_names:
            return _SCALAR_TYPE
        base = direction_base(node.name, self._direction_candidates()) \
            if node.name.startswith("d") else None
        if base is not None and node.name not in self.decls:
            # dV has V's type; V is typed first, so that both share its dimensions
            self.tangent_of[node.name] = base
            if base in self.used:
                if base not in self.variables:
                    self.variables[base] = self._new_variable(self.used[base])
                self.variables[node.name] = self.variables[base]
            else:
                decl = self.decls[base]
                self.variables[node.name] = self._new_variable(
                    node, Decl(node.name, decl.shape, decl.props))
            return self.variables[node.name]
        self.variables[node.name] = self._new_variable(node)
        return self.variables[node.name]

    def _direction_candidates(self) -> set[str]:
        # fixed for the whole run: built once, not once per name (3,000 names were quadratic)
        if self._candidates is None:
            self._candidates = (set(self.decls) | set(self.used)) - set(CONSTANTS) - (
                self.dimension_names - set(self.decls))
        return self._candidates

    def _new_variable(self, node: Name, decl: Decl | None = None) -> _Type:
        name = node.name
        decl = decl or self.decls.get(name)
        if decl is None:
            self.by_letter.add(name)
            # dV, of a V that is nowhere, has the type V's name gives (dX a matrix)
            first = name[1] if len(name) > 1 and name[0] == "d" and name[1].isalpha() else name[0]
            return _Type(tuple(self.dims.fresh() for _ in range(default_rank(first))))
        dims = tuple(self.dims.fresh(dim) for dim in decl.shape)
        if decl.props & _NEEDS_SQUARE and not self.dims.unify((dims[0], dims[1])):
            raise self._error(node, f"{name} is declared square but its dimensions differ")
        return _Type(dims)

    # -- operators --

    def _add(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if left.kind == right.kind and self.dims.unify(*zip(left.dims, right.dims, strict=True)):
            return left
        if self.broadcast and SCALAR in (left.kind, right.kind):  # NumPy's scalar + array
            return right if left.kind == SCALAR else left
        hint = None
        if SCALAR in (left.kind, right.kind):
            hint = "use c*vector(1) or c*matrix(1) for an array filled with c"
        elif {left.kind, right.kind} == {COLUMN, ROW}:
            hint = "transpose one of them with '"
        if node.op == "+":
            raise self._error(node, f"cannot add {self._pair(node.left, node.right)}", hint)
        raise self._error(node, f"cannot subtract {self._describe(node.right)} from "
                          f"{self._describe(node.left)}", hint)

    def _multiply(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if SCALAR in (left.kind, right.kind):
            return right if left.kind == SCALAR else left
        # Read vectors as thin matrices: a column is d×1, a row 1×d.
        left_rows, left_cols = _as_matrix(left)
        right_rows, right_cols = _as_matrix(right)
        if (left_cols == _ONE) != (right_rows == _ONE):
            both_columns = left.kind == right.kind == COLUMN
            hint = ("for an inner product write x'*y; for elementwise use .*" if both_columns
                    else "check the order of the factors and where a transpose ' is needed")
            raise self._error(node, f"cannot multiply {self._pair(node.left, node.right)}", hint)
        if left_cols != _ONE and not self.dims.unify((left_cols, right_rows)):
            names = self._dim_names(list(self.types))
            raise self._error(node, f"cannot multiply {self._pair(node.left, node.right)}: "
                              f"inner dimensions {names[self.dims.find(left_cols)]} and "
                              f"{names[self.dims.find(right_rows)]} differ")
        dims = tuple(dim for dim in (left_rows, right_cols) if dim != _ONE)
        return _Type(dims, row=left_rows == _ONE and right_cols != _ONE)

    def _divide(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if right.kind == SCALAR:
            return left
        raise self._error(node, f"cannot divide {self._describe(node.left)} by "
                          f"{self._describe(node.right)}",
                          "divide by a scalar; use ./ for elementwise division")

    def _elementwise(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if SCALAR in (left.kind, right.kind):
            return right if left.kind == SCALAR else left
        if left.kind == right.kind and self.dims.unify(*zip(left.dims, right.dims, strict=True)):
            return left
        hint = ("transpose one of them with '" if {left.kind, right.kind} == {COLUMN, ROW}
                else "elementwise operations need equal shapes")
        raise self._elementwise_error(node, hint)

    def _elementwise_power(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if left.kind == SCALAR and right.kind != SCALAR:
            raise self._elementwise_error(node, "write exp(log(c)*x) for c.^x")
        return self._elementwise(node, left, right)

    def _elementwise_error(self, node: Binary, hint: str) -> MatdiffError:
        left, right = self._describe(node.left), self._describe(node.right)
        message = {".*": f"cannot multiply elementwise {left} and {right}",
                   "./": f"cannot divide {left} elementwise by {right}",
                   ".^": f"cannot raise {left} elementwise to the powers {right}"}[node.op]
        return self._error(node, message, hint)

    def _power(self, node: Binary, left: _Type, right: _Type) -> _Type:
        if left.kind == right.kind == SCALAR:
            return left
        exponent = node.right
        whole = (isinstance(exponent, Num) and exponent.value.denominator == 1
                 and exponent.value >= 1)
        if left.kind == MATRIX and whole:
            if self.dims.unify((left.dims[0], left.dims[1])):
                return left
            raise self._error(node, f"a matrix power needs a square matrix, but "
                              f"{self._is_a(node.left)}")
        hint = {MATRIX: "a matrix power needs a whole number ≥ 1 as exponent; use inv(...) for "
                        "the inverse and .^ for elementwise powers",
                SCALAR: None}.get(left.kind, "use .^ for elementwise powers")
        raise self._error(node, f"cannot raise {self._describe(node.left)} to the power "
                          f"{self._describe(node.right)} with ^", hint)

    # -- functions --

    def _square(self, node: Call, arg: _Type) -> _Type:
        if arg.kind == MATRIX and self.dims.unify((arg.dims[0], arg.dims[1])):
            return arg
        raise self._error(node, f"{node.fn} needs a square matrix, but {self._is_a(node.args[0])}")

    def _square_to_scalar(self, node: Call, arg: _Type) -> _Type:
        self._square(node, arg)
        return _SCALAR_TYPE

    def _to_scalar(self, node: Call, arg: _Type) -> _Type:
        return _SCALAR_TYPE

    def _same(self, node: Call, arg: _Type) -> _Type:
        return arg

    def _diag(self, node: Call, arg: _Type) -> _Type:
        if arg.kind in (COLUMN, ROW):
            return _Type((arg.dims[0], arg.dims[0]))
        if arg.kind == MATRIX and self.dims.unify((arg.dims[0], arg.dims[1])):
            return _Type(arg.dims[:1])
        raise self._error(node, "diag needs a vector or a square matrix, but "
                          f"{self._is_a(node.args[0])}")

    def _kind_dependent(self, node: Call, arg: _Type) -> _Type:
        spelling, meanings, hint = KIND_DEPENDENT[node.fn]
        meaning = meanings.get(arg.kind)
        if meaning is None:
            raise self._error(node, f"{spelling} of {self._describe(node.args[0])} has no "
                              "meaning here", hint)
        if meaning == "reciprocal":
            return arg
        return _FUNCTION_RULES[meaning](self, node, arg)

    def _commutation(self, node: Call) -> _Type:
        d = self.dims.product([self._size(node, d) for d in node.sizes])
        return _Type((d, d))

    def _kron(self, node: Call, left: _Type, right: _Type) -> _Type:
        # vectors are thin matrices and a scalar is 1×1: kron(x, y') is x*y'; factors in
        # merge order (the right operand's index runs fastest)
        (left_rows, left_cols), (right_rows, right_cols) = (
            _as_matrix(t) if t.kind != SCALAR else (_ONE, _ONE) for t in (left, right))
        rows = self.dims.product([right_rows, left_rows]) if (left_rows, right_rows) != (
            _ONE, _ONE) else _ONE
        cols = self.dims.product([right_cols, left_cols]) if (left_cols, right_cols) != (
            _ONE, _ONE) else _ONE
        dims = tuple(d for d in (rows, cols) if d != _ONE)
        return _Type(dims, row=rows == _ONE and cols != _ONE)

    def _vec(self, node: Call, arg: _Type) -> _Type:
        if arg.kind == SCALAR:
            raise self._error(node, "vec needs a vector or a matrix, but "
                              f"{self._is_a(node.args[0])}")
        return _Type((self.dims.product(list(arg.dims)),))

    def _filled(self, node: Call, arg: _Type | None = None) -> _Type:
        if node.fn == "eye":
            size = self._size(node, node.sizes[0])
            return _Type((size, size))
        if node.sizes:
            return _Type(tuple(self._size(node, d) for d in node.sizes))
        rank = 1 if node.fn == "vector" else 2
        return _Type(tuple(self.dims.fresh() for _ in range(rank)))

    def _size(self, node: Call, d: str | int | DimProduct) -> int:
        if isinstance(d, DimProduct):  # eye(m*n)
            return self.dims.product([self._size(node, f) for f in d.factors])
        if d in self.decls and self.decls[d].shape:
            raise self._error(node, f"{d} is a variable, not a dimension",
                              "sizes are dimension names, as in eye(n), or whole numbers")
        return self.dims.fresh(d)

    # -- messages --

    def _error(self, node: Node, message: str, hint: str | None = None) -> MatdiffError:
        if hint is None:  # an undeclared name typed by its letter is the likeliest cause
            guessed = list(dict.fromkeys(n.name for n in post_order(node)
                                         if isinstance(n, Name) and n.name in self.by_letter))
            if guessed:
                ranks = [len(self.variables[n].dims) for n in guessed if n in self.variables]
                kind = KIND_WORDS[ranks[0]] if ranks else "typed"
                what = ("typed" if len(set(ranks)) != 1 else kind + "s" if guessed[1:] else
                        "a " + kind)
                last = len(self.variables[guessed[-1]].dims) if guessed[-1] in self.variables \
                    else 0
                other = ["vector", "scalar", "vector"][last]  # a kind it might be instead
                hint = (f"undeclared {', '.join(guessed[:4])}{', ...' if guessed[4:] else ''} "
                        f"{'are' if guessed[1:] else 'is'} {what} by the first letter (a-g "
                        f"scalars, h-z vectors, A-Z matrices): declare what is meant, as in "
                        f"'{guessed[-1]}: {other}'")
        return MatdiffError(message, column=node.pos, source=self.source, hint=hint)

    def _describe(self, node: Node) -> str:
        return f"{_snippet(node)} ({self._shape_words(node)})"

    def _is_a(self, node: Node) -> str:
        return f"{_snippet(node)} is a {self._shape_words(node)}"

    def _pair(self, left: Node, right: Node) -> str:
        return f"{self._describe(left)} and {self._describe(right)}"

    def _shape_words(self, node: Node) -> str:
        node_type = self.types[node]
        names = self._dim_names(list(self.types))
        sizes = [str(names[self.dims.find(dim)]) for dim in node_type.dims]
        if node_type.kind == MATRIX:
            return f"{sizes[0]}×{sizes[1]} matrix"
        return node_type.kind + (f" of size {sizes[0]}" if sizes else "")

    def _dim_names(self, nodes: list[Node]) -> dict[int, str | int]:
        """Name every dimension class: a fixed value names itself; the others get n, m, p...
        in order of first appearance in the text."""
        names: dict[int, str | int] = {}
        fresh = _fresh_names(self._taken_names())

        def name(root: int):
            if root not in names:
                value = self.dims.value(root)
                if isinstance(value, _Product):
                    names[root] = dim_product(*(name(self.dims.find(f)) for f in value.factors))
                else:
                    names[root] = value if value is not None else next(fresh)
            return names[root]

        introducers = sorted((n for n in nodes if isinstance(n, (Name, Call))), key=lambda n: n.pos)
        for node in introducers + nodes:
            for dim in self.types[node].dims:
                name(self.dims.find(dim))
        return names

    def _taken_names(self) -> set:
        taken = self.dims.fixed_values() | set(self.decls) | set(self.variables)
        for decl in self.decls.values():
            taken.update(decl.shape)
        return taken


def direction_base(name: str, variables: set[str]) -> str | None:
    """V for a direction named dV (or dV_2, a second direction in V's space), where V is one of
    ``variables``; else None."""
    if len(name) < 2 or name[0] != "d":
        return None
    rest = name[1:]
    if rest in variables:
        return rest
    head, _, k = rest.rpartition("_")
    return head if k.isdigit() and head in variables else None


def _as_matrix(node_type: _Type) -> tuple[int, int]:
    if node_type.kind == COLUMN:
        return node_type.dims[0], _ONE
    if node_type.kind == ROW:
        return _ONE, node_type.dims[0]
    return node_type.dims


def _fresh_names(taken: set) -> Iterator[str]:
    yield from (name for name in FRESH_DIM_NAMES if name not in taken)
    index = 1
    while True:
        if f"d{index}" not in taken:
            yield f"d{index}"
        index += 1


def _snippet(node: Node, limit: int = 40) -> str:
    text = to_text(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BINARY_RULES = {"+": _Inference._add, "-": _Inference._add, "*": _Inference._multiply,
                 "/": _Inference._divide, ".*": _Inference._elementwise,
                 "./": _Inference._elementwise, "^": _Inference._power,
                 ".^": _Inference._elementwise_power}

# LaTeX notations whose meaning depends on the kind of their operand: syntax/latex.py writes
# them as these calls and, once the kinds are known, replaces each by its meaning.
# name: (how LaTeX writes it, {operand kind: meaning}, hint for the other kinds)
KIND_DEPENDENT = {
    "det_or_abs": ("|...|", {SCALAR: "abs", MATRIX: "det"},
                   r"for the length of a vector write \|x\|"),
    "inv_or_reciprocal": ("^{-1}", {SCALAR: "reciprocal", MATRIX: "inv"},
                          "only a scalar or a square matrix has an inverse"),
    "norm": (r"\|...\|", {SCALAR: "abs", COLUMN: "norm2", ROW: "norm2"},
             r"for a matrix write \|X\|_F (Frobenius)"),
    "norm_1": (r"\|...\|_1", {SCALAR: "abs", COLUMN: "norm1", ROW: "norm1"},
               r"the induced 1-norm of a matrix is not supported; for the sum of the |X_ij| "
               r"write \sum \operatorname{abs}(X)"),
    "norm_2": (r"\|...\|_2", {SCALAR: "abs", COLUMN: "norm2", ROW: "norm2"},
               r"the spectral norm of a matrix is not supported; for the Frobenius norm "
               r"write \|X\|_F"),
    "norm_F": (r"\|...\|_F", {COLUMN: "norm2", ROW: "norm2", MATRIX: "norm2"}, None),
}

_FUNCTION_RULES = {
    **dict.fromkeys(KIND_DEPENDENT, _Inference._kind_dependent),
    "inv": _Inference._square, "det": _Inference._square_to_scalar,
    "logdet": _Inference._square_to_scalar, "tr": _Inference._square_to_scalar,
    "sum": _Inference._to_scalar, "norm1": _Inference._to_scalar,
    "norm2": _Inference._to_scalar, "diag": _Inference._diag,
    "vector": _Inference._filled, "matrix": _Inference._filled, "eye": _Inference._filled,
    "commutation": _Inference._commutation, "kron": _Inference._kron, "vec": _Inference._vec,
    "d": _Inference._same,  # the differential d(u) has u's type
    **{fn: _Inference._same for fn in ("exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "abs",
                                       "sign", "relu")},
}


# --- sizes that only the context gave ------------------------------------------------------------

def with_stated_sizes(text: str, decls: dict[str, Decl], shape: tuple) -> str:
    """``text`` (an expression of the given ``shape``) with the size written into each ``eye``,
    ``vector(c)`` and ``matrix(c)`` that the text itself leaves open (``2*a*eye`` becomes
    ``2*a*eye(n)``), so that it reads back without knowing the shape it should have."""
    if not _MAYBE_UNSIZED.search(text):
        return text  # every eye sized, no vector or matrix: reading it back would change nothing
    # our own output, bounded by the output length, may have more parts than an input may
    with budget.limits(parts=max(budget.current().parts, len(text))):
        root = parse_text(text)
    inference = _Inference(decls, text)
    inference.run(root)
    open_constants = [node for node in post_order(root) if _is_unsized_constant(node)
                      and any(inference.dims.value(d) is None
                              for d in inference.types[node].dims)]
    if not open_constants:
        return text
    fixed = [inference.dims.fresh(d) for d in shape]
    if not inference.dims.unify(*zip(inference.types[root].dims, fixed, strict=True)):
        raise ValueError(f"with_stated_sizes(): {text!r} is not of shape {shape}")
    edits = []
    for node in open_constants:
        sizes = [inference.dims.value(d) for d in inference.types[node].dims]
        if any(size is None for size in sizes):
            continue  # nothing outside fixes it either (the printer never writes such text)
        start = node.pos - 1
        if isinstance(node, Name):  # eye
            edits.append((start + len("eye"), f"({sizes[0]})"))
        else:
            edits.append((_closing_paren(text, start + len(node.fn)), ", " + ", ".join(
                map(str, sizes))))
    for at, insert in sorted(set(edits), reverse=True):  # a where-binding's copies share
        text = text[:at] + insert + text[at:]
    return text


_MAYBE_UNSIZED = re.compile(r"\beye\b(?!\()|\b(?:vector|matrix)\(")


def _is_unsized_constant(node: Node) -> bool:
    return (isinstance(node, Name) and node.name == "eye") or (
        isinstance(node, Call) and node.fn in ("vector", "matrix") and not node.sizes)


def _closing_paren(text: str, opening: int) -> int:
    depth = 0
    for at in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[at], 0)
        if depth == 0:
            return at
    raise ValueError("unbalanced parentheses")
