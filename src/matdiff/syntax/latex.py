r"""LaTeX -> the expression tree of syntax/parse.py, so typing, lowering and derivatives are shared.

The tokenizer here reads LaTeX's commands (``\Sigma`` is the name ``Sigma``, ``\mathbf{x}`` the
bold name ``x``, ``\left(`` a parenthesis, spacing is dropped), the grammar in latex.lark reads
the structure, and the transformer builds parse.py's nodes. Notations whose meaning depends on
kinds (``|A|``, ``A^{-1}``, ``\|x\|``) become placeholder calls that syntax/usage.py resolves
once the kinds are known. Columns are those of the LaTeX source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from .. import budget
from ..errors import MatdiffError
from .greek import LATEX_VARIANTS, LOWER, UNICODE_LETTERS, UPPER, ascii_name
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
    _check_size,
    _substitute_bindings,
)


@dataclass(eq=False)
class LatexName(Name):
    """A name with its typography: bold says vector (lower case) or matrix (capital)."""

    bold: bool = False


@dataclass(eq=False)
class _Juxtaposed(Binary):
    """A product written as factors side by side (A B), as opposed to a braced group."""


@dataclass(eq=False)
class _Closed(Call):
    r"""A call with its parentheses written, \det\left(A\right)."""


def _plain(node: Node) -> Node:
    """The node as an ordinary tree node (braces end what the markers above say)."""
    if isinstance(node, _Juxtaposed):
        return Binary(pos=node.pos, op=node.op, left=node.left, right=node.right)
    if isinstance(node, _Closed):
        return Call(pos=node.pos, fn=node.fn, args=node.args)
    return node


# --- tokens --------------------------------------------------------------------------------------

# words that name a function after \operatorname, \mathrm, \text, or as a command (\log)
FUNCTION_WORDS = {"exp": "exp", "log": "log", "ln": "log", "det": "det", "tr": "tr", "Tr": "tr",
                  "trace": "tr", "diag": "diag", "logdet": "logdet", "sin": "sin", "cos": "cos",
                  "tan": "tan", "tanh": "tanh", "abs": "abs", "sign": "sign", "sgn": "sign",
                  "relu": "relu", "sum": "sum"}
_COMMAND_FUNCTIONS = ("exp", "log", "ln", "det", "tr", "Tr", "sin", "cos", "tan", "tanh", "sum")
_OPERATORS = {"cdot": "*", "times": "*", "ast": "*", "div": "/", "odot": ".*", "circ": ".*",
              "oslash": "./", "*": "*", "/": "/", "·": "*", "×": "*", "⊙": ".*"}
_SKIPPED = {"quad", "qquad", "enspace", "thinspace", "medspace", "thickspace", "negthinspace",
            "displaystyle", "textstyle", "limits", "nolimits", "big", "Big", "bigg", "Bigg",
            "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "Biggl", "Biggr"}
_BARS = {"lvert": "LBAR", "rvert": "RBAR", "vert": "BAR", "lVert": "LNORM", "rVert": "RNORM",
         "Vert": "DBAR", "|": "BAR", "\\|": "DBAR"}
_BOLD_STYLES = ("mathbf", "boldsymbol", "bm", "textbf", "vec", "pmb")
_UNSUPPORTED = {"prod": r"products \prod are not supported", "int": "integrals are not supported",
                "infty": "infinity is not supported", "partial": "write the expression itself; "
                "matdiff takes the derivative", "nabla": "write the expression itself; matdiff "
                "takes the derivative", "max": "max is not differentiable here",
                "min": "min is not differentiable here", "langle": r"write \mathbf{x}^\top "
                r"\mathbf{y} for an inner product", "cdots": "write the whole expression",
                "ldots": "write the whole expression", "dots": "write the whole expression"}

_TOKEN = re.compile(rf"""
    (?P<space>\s+|~)
  | (?P<styled>\\(?:mathbf|boldsymbol|bm|textbf|mathbb|mathrm|mathit|mathsf|mathcal|text|textrm
                    |textit|operatorname|vec|pmb)
               (?:\s*\{{[^{{}}]*\}}|\s*\\[A-Za-z]+|\s+[A-Za-z0-9]))
  | (?P<frac_short>\\[dt]?frac(?:\s+[0-9A-Za-z]|[0-9])\s*[0-9A-Za-z])
  | (?P<command>\\[A-Za-z]+)
  | (?P<symbol>\\.)
  | (?P<number>\d+(?:\.\d+)?|\.\d+)
  | (?P<letter>[A-Za-z{UNICODE_LETTERS}])
  | (?P<char>.)
""", re.VERBOSE | re.DOTALL)

_CHARS = {"+": "PLUS", "-": "MINUS", "−": "MINUS", "^": "CARET", "_": "UNDERSCORE", "'": "TICK",
          "(": "LPAR", "[": "LPAR", ")": "RPAR", "]": "RPAR", "{": "LBRACE", "}": "RBRACE",
          "=": "EQUALS", ",": "COMMA", "|": "BAR"}
_ENDS_OPERAND = {"NUMBER", "NAME", "BOLD", "PI", "ONES", "RPAR", "RBRACE", "RBAR", "RNORM",
                 "TICK", "TOP", "FRAC_SHORT"}
_OPENING = {"(": "LPAR", "[": "LPAR", "\\{": "LPAR", "lbrack": "LPAR", "|": "LBAR",
            "\\|": "LNORM", "lvert": "LBAR", "vert": "LBAR", "lVert": "LNORM", "Vert": "LNORM"}
_CLOSING = {")": "RPAR", "]": "RPAR", "\\}": "RPAR", "rbrack": "RPAR", "|": "RBAR",
            "\\|": "RNORM", "rvert": "RBAR", "vert": "RBAR", "rVert": "RNORM", "Vert": "RNORM"}


def _error(message: str, column: int, hint: str | None = None) -> MatdiffError:
    return MatdiffError(message, column=column, hint=hint)


def tokenize(text: str) -> list[Token]:
    """The LaTeX source as grammar tokens (start_pos is the offset of each in ``text``)."""
    tokens: list[Token] = []
    raw = list(_TOKEN.finditer(text))
    index = 0
    while index < len(raw):
        match = raw[index]
        index += 1
        kind, value, start = match.lastgroup, match.group(), match.start()
        if kind == "space":
            continue
        if kind == "command" and value[1:] in ("left", "right"):
            delimiter, index = _next_nonspace(raw, index)
            tokens.extend(_sized_delimiter(value, delimiter, start))
            continue
        tokens.extend(_read(kind, value, start))
    return _tell_bars_apart(_join_differentials(tokens))


def _join_differentials(tokens: list[Token]) -> list[Token]:
    r"""\mathrm{d}X is the name dX (the differential of X, as matdiff prints it)."""
    out: list[Token] = []
    for n, token in enumerate(tokens):
        if token.type != "DIFF":
            if not (n and tokens[n - 1].type == "DIFF"):
                out.append(token)
            continue
        following = tokens[n + 1] if n + 1 < len(tokens) else None
        if following is None or following.type not in ("NAME", "BOLD"):
            raise _error(r"\mathrm{d} (a differential) must be followed by a variable",
                         token.start_pos + 1, r"as in \mathrm{d}X, read as the name dX")
        out.append(_token(following.type, "d" + following, token.start_pos, following.end_pos))
    return out


def _next_nonspace(raw: list[re.Match], index: int) -> tuple[re.Match | None, int]:
    while index < len(raw) and raw[index].lastgroup == "space":
        index += 1
    return (raw[index], index + 1) if index < len(raw) else (None, index)


def _token(kind: str, value: str, start: int, end: int | None = None) -> Token:
    return Token(kind, value, start_pos=start, line=1, column=start + 1,
                 end_pos=end if end is not None else start + len(value))


def _sized_delimiter(command: str, delimiter: re.Match | None, start: int) -> list[Token]:
    r"""\left( is an opening parenthesis, \right| a closing bar, \left. nothing."""
    table = _OPENING if command == "\\left" else _CLOSING
    if delimiter is None:
        raise _error(f"{command} needs a delimiter after it", start + 1,
                     "such as ( [ | or \\|")
    text = delimiter.group()
    if text == ".":
        return []
    key = text[1:] if delimiter.lastgroup == "command" else text
    if key not in table:
        raise _error(f"{command} needs a delimiter such as ( [ | or \\|, not '{text}'",
                     delimiter.start() + 1)
    return [_token(table[key], text, delimiter.start())]


def _read(kind: str, value: str, start: int) -> list[Token]:
    if kind == "number":
        return [_token("NUMBER", value, start)]
    if kind == "letter":
        return [_token("NAME", ascii_name(value), start, start + 1)]
    if kind == "styled":
        return [_styled(value, start)]
    if kind == "frac_short":
        return [_token("FRAC_SHORT", value, start)]
    if kind == "command":
        return _command(value[1:], value, start)
    if kind == "symbol":
        return _symbol(value, start)
    if value in _OPERATORS:
        return [_token("SLASH" if _OPERATORS[value] == "/" else "MUL", _OPERATORS[value], start,
                       start + 1)]
    if value in _CHARS:
        return [_token(_CHARS[value], value, start)]
    hints = {"&": "alignment & has no meaning in one formula", ".": None,
             "ᵀ": "write ^\\top for the transpose", "²": "write ^2"}
    raise _error(f"unexpected character '{value}'", start + 1, hints.get(value))


def _command(word: str, value: str, start: int) -> list[Token]:
    if word == "pi":
        return [_token("PI", value, start)]
    if word in LOWER or word in UPPER or word in LATEX_VARIANTS:
        return [_token("NAME", LATEX_VARIANTS.get(word, word), start, start + len(value))]
    if word in _COMMAND_FUNCTIONS:
        return [_token("FN", FUNCTION_WORDS[word], start, start + len(value))]
    if word in ("frac", "dfrac", "tfrac"):
        return [_token("FRAC", value, start)]
    if word == "sqrt":
        return [_token("SQRT", value, start)]
    if word in ("top", "intercal", "prime", "mathsf"):
        return [_token("TOP", value, start)]
    if word in _OPERATORS:
        kind = "SLASH" if _OPERATORS[word] == "/" else "MUL"
        return [_token(kind, _OPERATORS[word], start, start + len(value))]
    if word in _BARS:
        return [_token(_BARS[word], value, start)]
    if word in ("lbrack", "rbrack"):
        return [_token("LPAR" if word == "lbrack" else "RPAR", value, start)]
    if word in _SKIPPED:
        return []
    raise _error(f"unknown LaTeX command {value}", start + 1, _UNSUPPORTED.get(word))


def _symbol(value: str, start: int) -> list[Token]:
    if value in ("\\,", "\\;", "\\:", "\\!", "\\ ", "\\>", "\\\t", "\\\n"):
        return []
    if value == "\\|":
        return [_token("DBAR", value, start)]
    if value in ("\\{", "\\}"):
        return [_token("LPAR" if value == "\\{" else "RPAR", value, start)]
    hint = "paste one formula, without line breaks \\\\" if value == "\\\\" else None
    raise _error(f"unknown LaTeX command {value}", start + 1, hint)


_STYLED = re.compile(r"\\([a-z]+)\s*(?:\{\s*([^{}]*?)\s*\}|(\\?[A-Za-z0-9]+))", re.DOTALL)


def _styled(value: str, start: int) -> Token:
    r"""\mathbf{x}, \boldsymbol\mu, \operatorname{tr}, \mathbb{1}, \text{tr}, \mathrm{KL}..."""
    match = _STYLED.fullmatch(value)
    style = match.group(1)
    content = match.group(2) if match.group(2) is not None else match.group(3)
    end = start + len(value)
    if style in ("mathrm", "text", "textrm") and content in ("d", "where"):
        return _token("DIFF" if content == "d" else "WHERE", content, start, end)
    if style in ("operatorname", "mathrm", "text", "textrm") and content in FUNCTION_WORDS:
        return _token("FN", FUNCTION_WORDS[content], start, end)
    if style == "operatorname":
        raise _error(f"unknown function \\operatorname{{{content}}}", start + 1,
                     "known: " + ", ".join(sorted(set(FUNCTION_WORDS))))
    if content == "1" and style in (*_BOLD_STYLES, "mathbb"):
        return _token("ONES", value, start, end)
    if content == "I" and style == "mathbb":
        return _token("NAME", "I", start, end)
    if style == "mathbb":
        raise _error(f"{value} is not a quantity", start + 1,
                     "\\mathbb is read only in \\mathbb{1} (ones) and \\mathbb{I} (identity)")
    name = _name_of(content, value, start)
    if style == "mathsf" and name == "T":
        return _token("TOP", value, start, end)
    return _token("BOLD" if style in _BOLD_STYLES else "NAME", name, start, end)


def _name_of(content: str, value: str, start: int) -> str:
    if content.startswith("\\"):
        word = content[1:]
        if word in LOWER or word in UPPER or word in LATEX_VARIANTS:
            return LATEX_VARIANTS.get(word, word)
        raise _error(f"cannot read {value} as a name", start + 1)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", content):
        raise _error(f"cannot read {value} as a name", start + 1,
                     "a styled name is letters and digits, as in \\mathbf{x}")
    if content in FUNCTIONS or content in CONSTANTS:
        raise _error(f"{content} is a reserved name and cannot be a variable", start + 1)
    return content


def _tell_bars_apart(tokens: list[Token]) -> list[Token]:
    """A bare | or \\| opens unless one is open and an operand has just ended:
    |A| |B| is two determinants, \\||x|\\| a norm around an absolute value."""
    out: list[Token] = []
    open_count = {"BAR": 0, "DBAR": 0}
    kinds = {"BAR": ("LBAR", "RBAR"), "DBAR": ("LNORM", "RNORM")}
    for token in tokens:
        kind = token.type
        family = {"LBAR": "BAR", "RBAR": "BAR", "LNORM": "DBAR", "RNORM": "DBAR"}.get(kind, kind)
        if kind in kinds:
            closes = open_count[kind] > 0 and bool(out) and out[-1].type in _ENDS_OPERAND
            kind = kinds[kind][1 if closes else 0]
            token = Token.new_borrow_pos(kind, token.value, token)
        if family in open_count:
            open_count[family] += 1 if kind in ("LBAR", "LNORM") else -1
            open_count[family] = max(open_count[family], 0)
        out.append(token)
    return out


class _TokenStream(Lexer):
    """Hands lark the tokens :func:`tokenize` made."""

    def __init__(self, lexer_conf) -> None:
        pass

    def lex(self, data: str, *args):
        yield from tokenize(data)


# --- tokens -> tree ------------------------------------------------------------------------------

def _column(token: Token) -> int:
    return token.start_pos + 1


def _start(node: Node) -> int:
    """The column where ``node``'s source starts (Binary and Transpose point at their operator)."""
    while isinstance(node, (Binary, Transpose)):
        node = node.left if isinstance(node, Binary) else node.arg
    return node.pos


@v_args(inline=True)
class _BuildTree(Transformer):
    def number(self, token: Token) -> Num:
        return Num(pos=_column(token), value=Fraction(str(token)))

    def digit(self, token: Token) -> Num:
        if len(token) > 1:  # \frac123 is \frac{1}{2}3 in LaTeX: too easy to misread
            raise _error(f"write the number {token} in braces here", _column(token),
                         f"{{{token}}}")
        return self.number(token)

    def name(self, token: Token) -> LatexName:
        return LatexName(pos=_column(token), name=str(token))

    def bold(self, token: Token) -> LatexName:
        return LatexName(pos=_column(token), name=str(token), bold=True)

    def pi(self, token: Token) -> Name:
        return Name(pos=_column(token), name="pi")

    def ones(self, token: Token) -> Call:
        return Call(pos=_column(token), fn="vector", args=[Num(pos=_column(token), value=1)])

    def group(self, opening: Token, inner: Node, closing: Token) -> Node:
        return _plain(inner)

    def binary(self, left: Node, op: Token, right: Node) -> Binary:
        return Binary(pos=_column(op), op=str(op), left=left, right=right)

    def juxtapose(self, left: Node, right: Node) -> Binary:
        return _Juxtaposed(pos=_start(right), op="*", left=left, right=right)

    def negate(self, minus: Token, arg: Node) -> Unary:
        return Unary(pos=_column(minus), op="-", arg=arg)

    def unary_plus(self, plus: Token, arg: Node) -> Node:
        return arg

    def transpose(self, arg: Node, tick: Token) -> Transpose:
        return Transpose(pos=_column(tick), arg=arg)

    def call(self, fn: Token, arg: Node) -> Node:
        r"""A function before a bare argument, which runs as far as it can (\log 2\pi) unless
        it starts with a call in parentheses: \log\det\left(G\right)^{2} b is
        (log(det(G)))^2*b, as \log\left(x\right)^{2} b is (log(x))^2*b."""
        spine, node = [], arg
        while True:  # down the first factor, through juxtapositions and powers
            if isinstance(node, _Juxtaposed) or (isinstance(node, Binary)
                                                 and node.op in ("^", ".^")):
                spine.append(node)
                node = node.left
            elif isinstance(node, Transpose) or (isinstance(node, Call) and not
                                                 isinstance(node, _Closed) and
                                                 node.fn == "inv_or_reciprocal"):
                spine.append(node)
                node = node.arg if isinstance(node, Transpose) else node.args[0]
            else:
                break
        if not isinstance(node, _Closed):
            return Call(pos=_column(fn), fn=str(fn), args=[_plain(arg)])
        inner: Node = _Closed(pos=_column(fn), fn=str(fn), args=[node])
        for outer in reversed(spine):
            if isinstance(outer, Transpose):
                inner = Transpose(pos=outer.pos, arg=inner)
            elif isinstance(outer, Call):
                inner = Call(pos=outer.pos, fn=outer.fn, args=[inner])
            else:
                inner = type(outer)(pos=outer.pos, op=outer.op, left=inner, right=outer.right)
        return inner

    def call_parenthesised(self, fn: Token, opening: Token, arg: Node, closing: Token) -> Call:
        return _Closed(pos=_column(fn), fn=str(fn), args=[arg])

    def function_script(self, fn: Token, script: Token) -> Node:
        if fn == "sum":
            raise _error(r"\sum with an index or limits is not supported", _column(fn),
                         r"sum the entries of an array instead: \sum \mathbf{x} (or "
                         r"\mathbf{1}^\top \mathbf{x}) for \sum_i x_i, and "
                         r"\operatorname{tr}(A^\top B) for \sum_{ij} A_{ij} B_{ij}")
        if script.type == "UNDERSCORE":
            raise _error(f"a subscript on {fn} is not supported", _column(script),
                         "only natural logarithms (\\log, \\ln) are known" if fn == "log"
                         else None)
        raise _error(f"a power of the function {fn} is not supported", _column(script),
                     f"write (\\{fn} x)^2 for the square of \\{fn} x")

    def bars(self, opening: Token, inner: Node, closing: Token) -> Call:
        return Call(pos=_column(opening), fn="det_or_abs", args=[inner])

    def norm(self, opening: Token, inner: Node, closing: Token) -> Call:
        return Call(pos=_column(opening), fn="norm", args=[inner])

    def frac(self, frac: Token, numerator: Node, denominator: Node) -> Binary:
        return Binary(pos=_column(frac), op="/", left=numerator, right=denominator)

    def frac_short(self, token: Token) -> Binary:
        first, second = token.replace(" ", "")[-2:]
        column = _column(token)
        parts = [Num(pos=column, value=Fraction(c)) if c.isdigit() else
                 LatexName(pos=column, name=c) for c in (first, second)]
        return Binary(pos=column, op="/", left=parts[0], right=parts[1])

    def sqrt(self, token: Token, arg: Node) -> Call:
        return Call(pos=_column(token), fn="sqrt", args=[arg])

    # superscripts: ("transpose",) / ("inverse transpose",) / ("power", node)
    def superscript_group(self, opening: Token, inner: Node, closing: Token) -> tuple:
        if isinstance(inner, LatexName) and inner.name == "T" and not inner.bold:
            return ("transpose",)
        if (isinstance(inner, Unary) and isinstance(inner.arg, LatexName)
                and inner.arg.name == "T" and not inner.arg.bold):
            return ("inverse transpose",)
        return ("power", inner)

    def superscript_top(self, *tokens: Token) -> tuple:
        return ("transpose",)

    def superscript_inverse_top(self, *tokens: Token) -> tuple:
        return ("inverse transpose",)

    def superscript_hadamard(self, opening: Token, operator: Token, inner: Node,
                             closing: Token) -> tuple:
        if operator != ".*":
            raise _error(f"unexpected '{operator}' in an exponent", _column(operator),
                         r"x^{\circ 2} is the elementwise square")
        return ("hadamard power", inner)

    def superscript_digit(self, token: Token) -> tuple:
        if len(token) > 1:  # x^23 is x^2 3 in LaTeX
            raise _error(f"write the exponent {token} in braces", _column(token),
                         f"^{{{token}}}")
        return ("power", self.number(token))

    def superscript_name(self, token: Token) -> tuple:
        return self.superscript_group(token, self.name(token), token)

    def superscript(self, base: Node, caret: Token, script: tuple | Node) -> Node:
        if isinstance(script, Node):  # ^\pi
            script = ("power", script)
        column = _column(caret)
        if script[0] == "transpose":
            return Transpose(pos=column, arg=base)
        if script[0] == "inverse transpose":
            return Transpose(pos=column, arg=Call(pos=column, fn="inv_or_reciprocal",
                                                  args=[base]))
        exponent = script[1]
        if script[0] == "hadamard power":
            return Binary(pos=column, op=".^", left=base, right=exponent)
        if (isinstance(exponent, Unary) and isinstance(exponent.arg, Num)
                and exponent.arg.value.denominator == 1 and exponent.arg.value >= 1):
            inverse = Call(pos=column, fn="inv_or_reciprocal", args=[base])
            if exponent.arg.value == 1:
                return inverse
            return Binary(pos=column, op="^", left=inverse, right=exponent.arg)  # A^{-2}
        if isinstance(base, LatexName) and base.name == "e" and not base.bold:
            return Call(pos=base.pos, fn="exp", args=[exponent])  # Euler's number
        return Binary(pos=column, op="^", left=base, right=exponent)

    def binding(self, target: Node, equals: Token, value: Node) -> tuple[Token, Node]:
        if not isinstance(target, LatexName):
            raise _error("only a name can be bound after where", _start(target),
                         r"as in \quad\text{where } s = \exp(x)")
        if target.name in FUNCTIONS or target.name in CONSTANTS:
            raise _error(f"'{target.name}' is a function or constant and cannot be bound",
                         target.pos, "choose another name")
        return _token("NAME", target.name, target.pos - 1), value

    def where(self, body: Node, keyword: Token, *rest) -> Node:
        bindings = [item for item in rest if isinstance(item, tuple)]
        return _substitute_bindings(body, keyword, bindings)

    def subscript_braced(self, opening: Token, *tokens: Token) -> list[Token]:
        return list(tokens[:-1])

    def subscript_bare(self, token: Token) -> list[Token]:
        if token.type == "NUMBER" and len(token) > 1:  # x_12 is x_1 2 in LaTeX
            raise _error(f"write the subscript {token} in braces", _column(token),
                         f"_{{{token}}}")
        return [token]

    def subscript(self, base: Node, underscore: Token, tokens: list[Token]) -> Node:
        column = _column(underscore)
        if isinstance(base, Call) and base.fn == "norm":
            which = "".join(tokens)
            fn = {"1": "norm_1", "2": "norm_2", "F": "norm_F", "Fro": "norm_F"}.get(which)
            if fn is None:
                raise _error(f"unknown norm subscript {which}", column,
                             r"use \|x\|_1, \|x\|_2 or \|X\|_F")
            return Call(pos=base.pos, fn=fn, args=base.args)
        if (isinstance(base, Call) and base.fn == "vector" and not base.sizes
                and len(tokens) == 1 and tokens[0].type in ("NAME", "NUMBER")):
            # \mathbf{1}_{n}: the ones vector of size n, as matdiff prints a stated size
            size = int(tokens[0]) if tokens[0].type == "NUMBER" else str(tokens[0])
            if size == 0:
                raise _error("a size is a positive whole number", _column(tokens[0]))
            return Call(pos=base.pos, fn="vector", args=base.args, sizes=(size,))
        if isinstance(base, Name) and base.name == "pi":  # \pi_k, a mixing weight
            base = LatexName(pos=base.pos, name="pi")
        if not isinstance(base, LatexName) or "_" in base.name:
            raise _error("a subscript can follow only a name (x_i is the name x_i) or a norm "
                         r"(\|x\|_2)", column)
        for token in tokens:
            if token.type not in ("NAME", "NUMBER", "BOLD") or "." in token:
                raise _error(f"'{token}' cannot be part of a subscript", _column(token),
                             "a subscript is part of a name, as in x_i or \\Sigma_{k}")
        return LatexName(pos=base.pos, name=f"{base.name}_{''.join(tokens)}", bold=base.bold)


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "latex.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer=_TokenStream, transformer=_BuildTree())


def parse_latex_text(text: str) -> Node:
    """Parse LaTeX into a tree of parse.py nodes (names carry their typography)."""
    try:
        budget.check("text_length", len(text), f"an expression of {len(text):,} characters")
        body = _without_final_punctuation(text)
        if not tokenize(body):
            raise MatdiffError("empty expression",
                               hint=r"write an expression such as \mathbf{x}^\top A \mathbf{x}")
        try:
            root = _parser().parse(body)
        except UnexpectedInput as err:
            raise _syntax_error(body, err) from None
        _check_size(root)
    except MatdiffError as err:
        err.source = err.source if err.source is not None else text
        raise
    return root


def _without_final_punctuation(text: str) -> str:
    """A formula copied from a sentence may end in its full stop or comma."""
    body = text.rstrip()
    if body[-1:] in (".", ",", ";") and body[-2:-1] != "\\":
        return body[:-1]
    return text


def variable_name(name: str) -> str:
    r"""A variable's name as the input spells it: ``Σ``, ``\Sigma``, ``\boldsymbol\mu``."""
    if not isinstance(name, str) or not any(char in name for char in "\\{}"):
        return ascii_name(name) if isinstance(name, str) else name
    try:
        node = parse_latex_text(name)
    except MatdiffError:
        return name
    return node.name if isinstance(node, LatexName) else name


# --- syntax errors -------------------------------------------------------------------------------

_TOKEN_HINTS = {
    "EQUALS": "paste only the right-hand side of the formula",
    "TOP": r"\top transposes as a superscript: x^\top",
    "CARET": "a superscript needs something before it",
    "UNDERSCORE": "a subscript needs a name before it",
    "COMMA": "commas have no meaning here; paste one expression",
}


def _syntax_error(text: str, err: UnexpectedInput) -> MatdiffError:
    if isinstance(err, MatdiffError):
        return err
    token = getattr(err, "token", None)
    if not isinstance(err, UnexpectedToken) or token is None or token.type == "$END":
        unclosed = _unclosed(text)
        if unclosed:
            return unclosed
        return MatdiffError("expression ends too early", column=len(text.rstrip()) + 1,
                            hint="is something missing at the end?")
    shown = text[token.start_pos:token.end_pos] if token.end_pos else str(token)
    column = _column(token)
    hint = _TOKEN_HINTS.get(token.type)
    if token.type == "MINUS" and _previous_type(err) == "CARET":
        hint = "put a negative exponent in braces: x^{-1}"
    elif token.type in ("RPAR", "RBRACE", "RBAR", "RNORM"):
        hint = hint or "is there an opening bracket for it, and something inside?"
    elif token.type == "LPAR" and _previous_type(err) == "SQRT":
        hint = r"only square roots are supported: \sqrt{x}"
    elif hint is None and "RPAR" in err.expected | set() and len(err.expected) < 4:
        hint = "a bracket is not closed"
    return MatdiffError(f"unexpected '{shown}'", column=column, hint=hint)


def _previous_type(err: UnexpectedToken) -> str | None:
    stack = getattr(err, "state", None)
    values = getattr(stack, "value_stack", None) if stack is not None else None
    if values:
        last = values[-1]
        return last.type if isinstance(last, Token) else None
    return None


def _unclosed(text: str) -> MatdiffError | None:
    opens = {"LPAR": "RPAR", "LBRACE": "RBRACE", "LBAR": "RBAR", "LNORM": "RNORM"}
    stack: list[Token] = []
    for token in tokenize(text):
        if token.type in opens:
            stack.append(token)
        elif token.type in opens.values() and stack and opens[stack[-1].type] == token.type:
            stack.pop()
    if stack:
        token = stack[-1]
        return MatdiffError(f"'{text[token.start_pos:token.end_pos]}' is never closed",
                            column=_column(token))
    return None


def parse_latex_typed(text: str, decls: dict) -> tuple[Node, dict]:
    """Parse LaTeX and type it: kinds from declarations, typography and usage (syntax/usage.py)."""
    from .usage import type_by_usage

    root = parse_latex_text(text)
    try:
        return type_by_usage(root, decls, text)
    except MatdiffError as err:
        err.source = err.source if err.source is not None else text
        raise
