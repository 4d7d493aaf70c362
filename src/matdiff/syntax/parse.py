"""Text -> expression tree: the grammar lives in grammar.lark, this module builds the nodes.

Every node remembers the 1-based column it came from, so later stages can point at it.
Columns count characters from the start of the text (for one-line input that is the column).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from .. import budget
from ..core.ir import dim_product
from ..errors import MatdiffError
from .greek import ascii_name

if TYPE_CHECKING:
    from .types import Decl

_CHAINS = ({"+", "-"}, {"*", "/", ".*", "./"})  # a + b + c is a chain, not nesting

FUNCTIONS = ("inv", "det", "logdet", "tr", "sum", "norm1", "norm2", "diag", "exp", "log", "sin",
             "cos", "tan", "tanh", "sqrt", "abs", "sign", "relu", "vector", "matrix", "vec",
             "kron", "commutation")
CONSTANTS = ("pi", "eye")
# d(u) is the differential of u in the direction of the derivation's variable (dX for wrt X);
# only a call is: `d` alone stays an ordinary name (a scalar by its letter)
DIFFERENTIAL = "d"
FILLED = ("vector", "matrix")  # vector(c) / matrix(c): filled with the literal c, size from context
# eye(n), vector(c, n), matrix(c, m, n): the size stated, for where nothing around implies it
SIZE_COUNT = {"eye": 1, "vector": 1, "matrix": 2}
ARITY = {"kron": 2, "commutation": 2}  # arguments (sizes for commutation); others take one
# commutation(m, n): K*vec(A) = vec(A') for an m×n matrix A; its arguments are sizes


# --- the tree -----------------------------------------------------------------------------------

@dataclass(eq=False, kw_only=True)
class Node:
    pos: int  # 1-based column: the operator for Binary/Unary/Transpose, else the first character
    shape: tuple = ()  # set by types.infer: () scalar, (d,) vector, (d1, d2) matrix
    row: bool = False  # set by types.infer: True for a row vector (a transposed column vector)


@dataclass(eq=False)
class Num(Node):
    value: Fraction


@dataclass(eq=False)
class Name(Node):
    name: str  # a variable, or one of CONSTANTS


@dataclass(eq=False)
class Call(Node):
    fn: str
    args: list[Node] = field(default_factory=list)
    sizes: tuple = ()  # stated dimensions (names or ints) of eye / vector / matrix; not children


@dataclass(eq=False)
class Unary(Node):
    op: str  # always '-'
    arg: Node


@dataclass(eq=False)
class Transpose(Node):
    arg: Node


@dataclass(eq=False)
class Binary(Node):
    op: str  # + - * / ^ .* ./ .^
    left: Node
    right: Node


def children(node: Node) -> list[Node]:
    """The direct subexpressions of ``node``, left to right."""
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, (Unary, Transpose)):
        return [node.arg]
    if isinstance(node, Binary):
        return [node.left, node.right]
    return []


def post_order(root: Node) -> list[Node]:
    """Every node once, children before parents, without recursion (the tree may be deep)."""
    order: list[Node] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children(node)))
    return order


# --- text -> tree --------------------------------------------------------------------------------

def _column(token: Token) -> int:
    return token.start_pos + 1


@v_args(inline=True)
class _BuildTree(Transformer):
    """Runs inside the LALR parser (no tree is built first), so depth costs no recursion."""

    def number(self, token: Token) -> Num:
        mantissa, _, exponent = token.lower().partition("e")
        # `1e999999999` would otherwise build a gigantic exact Fraction
        exponent_digits = exponent.lstrip("+-").lstrip("0")
        if len(exponent_digits) > 6 or (exponent and abs(int(exponent)) >
                                        budget.current().literal_exponent):
            raise budget.LimitError(f"number {budget.shorten(token, 40)} is out of range",
                                    "literal_exponent", column=_column(token))
        budget.check("integer_digits", len(mantissa) - 1, f"number {budget.shorten(token, 40)}",
                     column=_column(token))
        return Num(pos=_column(token), value=Fraction(str(token)))

    def name(self, token: Token) -> Name:
        if token in FUNCTIONS:
            raise MatdiffError(f"{token} is a function and needs an argument",
                               column=_column(token), hint=f"write {token}(...)")
        return Name(pos=_column(token), name=ascii_name(str(token)))

    def call(self, fn: Token, args: list[Node] | None) -> Call:
        args = args or []
        if fn == "eye":
            if len(args) != 1:
                raise MatdiffError(f"eye takes one size, not {len(args)}", column=_column(fn),
                                   hint="write eye(n), or eye alone where the size is implied")
            return Call(pos=_column(fn), fn="eye", sizes=_sizes(args))
        if fn == "commutation":
            if len(args) != 2:
                raise MatdiffError(f"commutation takes two sizes, not {len(args)}",
                                   column=_column(fn), hint="write commutation(m, n) for the "
                                   "matrix K with K*vec(A) = vec(A') for an m×n matrix A")
            return Call(pos=_column(fn), fn="commutation", sizes=_sizes(args))
        if fn == DIFFERENTIAL:
            if len(args) != 1:
                raise MatdiffError(f"d takes one argument, not {len(args)}", column=_column(fn),
                                   hint="write d(u) for the differential of u, as in d(inv(X))")
            return Call(pos=_column(fn), fn=DIFFERENTIAL, args=args)
        if fn in CONSTANTS:
            raise MatdiffError(f"{fn} is a constant and takes no argument", column=_column(fn))
        if fn not in FUNCTIONS:
            raise MatdiffError(f"unknown function '{fn}'", column=_column(fn),
                               hint="known functions: " + ", ".join(FUNCTIONS))
        if fn in FILLED and len(args) == 1 + SIZE_COUNT[fn]:
            return Call(pos=_column(fn), fn=str(fn), args=[_literal_fill_value(fn, args[0])],
                        sizes=_sizes(args[1:]))
        if fn == "kron" and len(args) != 2:
            raise MatdiffError(f"kron takes two arguments, not {len(args)}", column=_column(fn))
        if len(args) != 1 and fn != "kron":
            sized = (f" (or {fn}(c, {', '.join('mn'[:SIZE_COUNT[fn]])}) with its size)"
                     if fn in FILLED else "")
            raise MatdiffError(f"{fn} takes one argument{sized}, not {len(args)}",
                               column=_column(fn))
        if fn in FILLED:
            args = [_literal_fill_value(fn, args[0])]
        return Call(pos=_column(fn), fn=str(fn), args=args)

    def arguments(self, *args: Node) -> list[Node]:
        return list(args)

    def binding(self, name: Token, value: Node) -> tuple[Token, Node]:
        if name in FUNCTIONS or name in CONSTANTS:
            raise MatdiffError(f"'{name}' is a function or constant and cannot be bound",
                               column=_column(name), hint="choose another name")
        return name, value

    def where(self, body: Node, keyword: Token, *bindings: tuple[Token, Node]) -> Node:
        return _substitute_bindings(body, keyword, bindings)

    def negate(self, minus: Token, arg: Node) -> Unary:
        return Unary(pos=_column(minus), op="-", arg=arg)

    def transpose(self, arg: Node, tick: Token) -> Transpose:
        return Transpose(pos=_column(tick), arg=arg)

    def binary(self, left: Node, op: Token, right: Node) -> Binary:
        return Binary(pos=_column(op), op=str(op), left=left, right=right)


def _substitute_bindings(body: Node, keyword: Token, bindings) -> Node:
    """The body with every bound name replaced by (a copy of) its expression."""
    values: dict[str, Node] = {}
    for name, value in bindings:
        if name in values:
            raise MatdiffError(f"'{name}' is bound twice after where", column=_column(name),
                               hint="give each binding its own name")
        values[str(name)] = value
    if not values:
        raise MatdiffError("where needs a binding such as s = exp(x)", column=_column(keyword))
    resolved: dict[str, Node] = {}

    def expand(node: Node, active: tuple[str, ...]) -> Node:
        if isinstance(node, Name) and node.name in values:
            if node.name in active:
                raise MatdiffError(f"the binding of '{node.name}' refers to itself",
                                   column=node.pos, hint="a binding may use the others, "
                                   "not itself")
            if node.name not in resolved:
                resolved[node.name] = expand(values[node.name], active + (node.name,))
            return _copy(resolved[node.name])
        return _with_children(node, [expand(c, active) for c in children(node)])

    return expand(body, ())


def _with_children(node: Node, new: list[Node]) -> Node:
    if isinstance(node, Call):
        return Call(pos=node.pos, fn=node.fn, args=new, sizes=node.sizes)
    if isinstance(node, Unary):
        return Unary(pos=node.pos, op=node.op, arg=new[0])
    if isinstance(node, Transpose):
        return Transpose(pos=node.pos, arg=new[0])
    if isinstance(node, Binary):
        return Binary(pos=node.pos, op=node.op, left=new[0], right=new[1])
    if isinstance(node, Num):
        return Num(pos=node.pos, value=node.value)
    return replace(node)  # a Name, keeping its class (LaTeX names carry their typography)


def _copy(node: Node) -> Node:
    """A fresh tree (types.infer annotates nodes in place, and each use has its own)."""
    return _with_children(node, [_copy(c) for c in children(node)])


def _sizes(args: list[Node]) -> tuple:
    """Dimension names or positive integers, as in eye(n) or matrix(0, 2, k), or products of
    them, as in eye(m*n)."""
    sizes = []
    for arg in args:
        if isinstance(arg, Name) and arg.name not in CONSTANTS:
            sizes.append(arg.name)
        elif isinstance(arg, Num) and arg.value.denominator == 1 and arg.value > 0:
            sizes.append(int(arg.value))
        elif isinstance(arg, Binary) and arg.op == "*":
            sizes.append(dim_product(*_sizes([arg.left]), *_sizes([arg.right])))
        else:
            raise MatdiffError("a size is a dimension name or a positive whole number",
                               column=arg.pos, hint="as in eye(n) or vector(1, 3)")
    return tuple(sizes)


def _literal_fill_value(fn: str, arg: Node) -> Num:
    if isinstance(arg, Num):
        return arg
    if isinstance(arg, Unary) and isinstance(arg.arg, Num):
        return Num(pos=arg.pos, value=-arg.arg.value)
    raise MatdiffError(f"{fn}(...) needs a number, as in {fn}(1)", column=arg.pos,
                       hint=f"for c times a {fn} of ones write c*{fn}(1)")


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True,
                transformer=_BuildTree())


def parse_text(text: str) -> Node:
    """Parse one expression into a tree of nodes (syntax only: shapes are left for types.infer)."""
    try:
        budget.check("text_length", len(text), f"an expression of {len(text):,} characters")
        if not text.strip():
            raise MatdiffError("empty expression", hint="write an expression such as x'*A*x")
        try:
            root = _parser().parse(text)
        except UnexpectedInput as err:
            raise _syntax_error(text, err) from None
        _check_size(root)
    except MatdiffError as err:
        err.source = err.source if err.source is not None else text
        raise
    return root


def _check_size(root: Node) -> None:
    count = 0
    chosen = budget.current()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > chosen.parts:
            raise budget.LimitError(f"the expression has more than {chosen.parts:,} parts",
                                    "parts")
        if depth > chosen.depth:
            raise budget.LimitError(f"the expression is nested more than {chosen.depth} "
                                    "levels deep", "depth", column=node.pos)
        for child in children(node):
            stack.append((child, depth if _same_chain(node, child) else depth + 1))


def _same_chain(parent: Node, child: Node) -> bool:
    """Whether child continues parent's run of + and - (or of * and /): such runs are
    flattened into one sum (or product) later, so they do not nest."""
    return isinstance(parent, Binary) and isinstance(child, Binary) and any(
        parent.op in chain and child.op in chain for chain in _CHAINS)


# --- syntax errors -------------------------------------------------------------------------------

_LOOKALIKES = {"−": "-", "–": "-", "×": "*", "·": "*", "’": "'", "‘": "'", "²": "^2", "÷": "/"}
_OPERATORS = ("+", "-", "*", "/", "^", ".*", "./", ".^")


def _syntax_error(text: str, err: UnexpectedInput) -> MatdiffError:
    """Turn lark's error into one sentence about the character or token at fault."""
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream]
        hint = f"write {_LOOKALIKES[char]} instead" if char in _LOOKALIKES else None
        return MatdiffError(f"unexpected character '{char}'", column=err.pos_in_stream + 1,
                            hint=hint)
    token = getattr(err, "token", None)
    at_end = isinstance(err, UnexpectedEOF) or token is None or token.type == "$END"
    column = len(text.rstrip()) + 1 if at_end else _column(token)
    unmatched = _paren_problem(text, column, at_end)
    if unmatched:
        return unmatched
    if at_end:
        last = text.rstrip()[-2:]
        operator = next((op for op in (last, last[-1:]) if op in _OPERATORS), None)
        hint = f"'{operator}' needs something after it" if operator else None
        return MatdiffError("expression ends too early", column=column, hint=hint)
    return MatdiffError(f"unexpected {_describe_token(token)}", column=column,
                        hint=_token_hint(token, err.expected))


def _paren_problem(text: str, error_column: int, at_end: bool) -> MatdiffError | None:
    open_columns: list[int] = []
    for index, char in enumerate(text):
        if index + 1 > error_column:
            break
        if char == "(":
            open_columns.append(index + 1)
        elif char == ")":
            if not open_columns:
                return MatdiffError("unexpected ')': there is no '(' for it to close",
                                    column=index + 1)
            open_columns.pop()
    if at_end and open_columns:
        return MatdiffError(f"unbalanced parentheses: '(' at column {open_columns[-1]} is "
                            "never closed", column=open_columns[-1])
    return None


def _describe_token(token: Token) -> str:
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type == "NUMBER":
        return f"number {token}"
    return f'"{token}"' if token == "'" else f"'{token}'"


def _token_hint(token: Token, expected: set[str]) -> str | None:
    if token == "=":
        return "'=' only binds a name after where, as in s*s' where s = exp(x)"
    if "NAME" not in expected:  # an operand has just ended
        if token.type in ("NAME", "NUMBER", "LPAR"):
            return "is an operator such as * missing before it?"
        if token.type == "COMMA":
            return "commas only separate function arguments"
        return None
    return f"something is missing before {_describe_token(token)}"


# --- tree -> text (for messages) -----------------------------------------------------------------

# Binding strength of each production in grammar.lark: what needs parentheses where.
_SUM, _PRODUCT, _UNARY, _POWER, _POSTFIX, _ATOM = range(6)
_BINARY_LEVEL = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, ".*": _PRODUCT,
                 "./": _PRODUCT, "^": _POWER, ".^": _POWER}


def to_text(node: Node) -> str:
    """Source text for ``node`` with only the parentheses it needs.

    For a tree from :func:`parse_text`, the text parses back to the same tree.
    """
    text, _ = _text_and_level(node)
    return text


def _text_and_level(node: Node) -> tuple[str, int]:
    if isinstance(node, Num):
        return _number_text(node.value), _UNARY if node.value < 0 else _ATOM
    if isinstance(node, Name):
        return node.name, _ATOM
    if isinstance(node, Call):
        parts = [to_text(arg) for arg in node.args] + [str(size) for size in node.sizes]
        return f"{node.fn}({', '.join(parts)})", _ATOM
    if isinstance(node, Unary):
        return "-" + _operand(node.arg, _UNARY), _UNARY
    if isinstance(node, Transpose):
        return _operand(node.arg, _POSTFIX) + "'", _POSTFIX
    if isinstance(node, Binary):
        level = _BINARY_LEVEL[node.op]
        if level == _POWER:  # right-associative: the base binds tighter than the exponent
            left, right = _operand(node.left, _POSTFIX), _operand(node.right, _UNARY)
        else:
            left, right = _operand(node.left, level), _operand(node.right, level + 1)
        spaced = f" {node.op} " if level == _SUM else node.op
        return f"{left}{spaced}{right}", level
    raise TypeError(f"not an expression node: {node!r}")


def _operand(node: Node, weakest_allowed: int) -> str:
    text, level = _text_and_level(node)
    return text if level >= weakest_allowed else f"({text})"


def _number_text(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    for digits in range(1, 21):
        scaled = value * 10**digits
        if scaled.denominator == 1:
            sign = "-" if value < 0 else ""
            whole, fraction = divmod(abs(scaled.numerator), 10**digits)
            return f"{sign}{whole}.{fraction:0{digits}d}"
    return repr(float(value))


# --- convenience ---------------------------------------------------------------------------------

SYNTAXES = ("auto", "text", "latex")


def is_latex(text: str) -> bool:
    """LaTeX is recognised by what the text syntax never contains: a backslash, braces, bars."""
    return any(char in text for char in "\\{}|")


def parse_typed(text: str, declare: str | dict | None = None,
                syntax: str = "auto") -> tuple[Node, dict[str, Decl]]:
    """Parse ``text`` and type it against ``declare``: the tree and the variables it uses.

    ``syntax`` is "text", "latex" or "auto" (LaTeX when :func:`is_latex` says so).
    """
    from .types import infer, parse_declarations  # types imports this module

    if syntax not in SYNTAXES:
        raise MatdiffError(f"unknown syntax {syntax!r}", hint="use one of " + ", ".join(SYNTAXES))
    decls = parse_declarations(declare)
    if syntax == "latex" or (syntax == "auto" and isinstance(text, str) and is_latex(text)):
        from .latex import parse_latex_typed  # latex builds on this module

        return parse_latex_typed(text, decls)
    root = parse_text(text)
    return root, infer(root, decls, text)
