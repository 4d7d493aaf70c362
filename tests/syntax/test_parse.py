"""Syntax: precedence, associativity, numbers, columns, and the text a tree prints back to."""

from fractions import Fraction

import pytest

from matdiff.core.ir import DimProduct
from matdiff.syntax.parse import (
    ARITY,
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


def tree(node: Node) -> str:
    """A fully parenthesised Lisp-like form, so tests compare structure and not spacing."""
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"({node.fn} {' '.join(tree(arg) for arg in node.args)})"
    if isinstance(node, Unary):
        return f"(neg {tree(node.arg)})"
    if isinstance(node, Transpose):
        return f"(' {tree(node.arg)})"
    assert isinstance(node, Binary)
    return f"({node.op} {tree(node.left)} {tree(node.right)})"


@pytest.mark.parametrize("text, expected", [
    ("a + b - c", "(- (+ a b) c)"),
    ("a - b - c", "(- (- a b) c)"),
    ("a * b / c", "(/ (* a b) c)"),
    ("a .* b ./ c * d", "(* (./ (.* a b) c) d)"),
    ("a + b * c", "(+ a (* b c))"),
    ("(a + b) * c", "(* (+ a b) c)"),
    ("-x^2", "(neg (^ x 2))"),
    ("-a*b", "(* (neg a) b)"),
    ("a*-b", "(* a (neg b))"),
    ("a - -b", "(- a (neg b))"),
    ("--a", "(neg (neg a))"),
    ("a^b^c", "(^ a (^ b c))"),
    ("a.^b.^c", "(.^ a (.^ b c))"),
    ("x^-1", "(^ x (neg 1))"),
    ("x^-y^2", "(^ x (neg (^ y 2)))"),
    ("x'*A*x", "(* (* (' x) A) x)"),
    ("x''", "(' (' x))"),
    ("x'''", "(' (' (' x)))"),
    ("x'^2", "(^ (' x) 2)"),
    ("x^2'", "(^ x (' 2))"),
    ("-x'", "(neg (' x))"),
    ("(A*B)'", "(' (* A B))"),
    ("2*x'*y", "(* (* 2 (' x)) y)"),
    ("a*b^c", "(* a (^ b c))"),
    ("2.*x", "(.* 2 x)"),
    ("2./x", "(./ 2 x)"),
    ("2.^x", "(.^ 2 x)"),
    ("2. * x", "(* 2 x)"),
    ("exp(x)'", "(' (exp x))"),
    ("inv(S)*(x - m)", "(* (inv S) (- x m))"),
    ("((x))", "x"),
    ("vector(1)*m'", "(* (vector 1) (' m))"),
    ("matrix(-2)", "(matrix -2)"),
    ("vector(-0.5)", "(vector -1/2)"),
    ("pi*eye", "(* pi eye)"),
    ("  x\t+\ny ", "(+ x y)"),
])
def test_precedence_and_associativity(text: str, expected: str) -> None:
    assert tree(parse_text(text)) == expected


@pytest.mark.parametrize("literal, value", [
    ("2", Fraction(2)),
    ("0.5", Fraction(1, 2)),
    (".5", Fraction(1, 2)),
    ("2.", Fraction(2)),
    ("1e-3", Fraction(1, 1000)),
    ("1E+2", Fraction(100)),
    ("2.5e1", Fraction(25)),
    ("0.1", Fraction(1, 10)),
    ("123456789012345678901234567890", Fraction(123456789012345678901234567890)),
])
def test_numbers_are_exact_fractions(literal: str, value: Fraction) -> None:
    node = parse_text(literal)
    assert isinstance(node, Num)
    assert node.value == value and isinstance(node.value, Fraction)


def test_negative_fill_value_is_a_negative_number() -> None:
    call = parse_text("vector(-3)")
    assert isinstance(call, Call) and call.fn == "vector"
    (arg,) = call.args
    assert isinstance(arg, Num) and arg.value == -3 and arg.pos == 8


def test_columns_point_at_operators_and_first_characters() -> None:
    root = parse_text("x' * A + -inv(B)")
    assert isinstance(root, Binary) and root.op == "+" and root.pos == 8
    product = root.left
    assert isinstance(product, Binary) and product.pos == 4
    assert isinstance(product.left, Transpose) and product.left.pos == 2
    assert isinstance(product.left.arg, Name) and product.left.arg.pos == 1
    assert isinstance(product.right, Name) and product.right.pos == 6
    negation = root.right
    assert isinstance(negation, Unary) and negation.pos == 10
    assert isinstance(negation.arg, Call) and negation.arg.pos == 11
    assert negation.arg.args[0].pos == 15


def test_two_character_operator_column_is_its_first_character() -> None:
    root = parse_text("x .^ 2")
    assert isinstance(root, Binary) and root.op == ".^" and root.pos == 3


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_every_function_parses(fn: str) -> None:
    arity = ARITY.get(fn, 1)
    argument = "1" if fn in ("vector", "matrix") else ", ".join(["X"] * arity)
    node = parse_text(f"{fn}({argument})")
    assert isinstance(node, Call) and node.fn == fn
    assert len(node.sizes if fn == "commutation" else node.args) == arity


def test_sizes_may_be_products_of_dimensions() -> None:
    node = parse_text("eye(2*m*n) + commutation(m, 3)")
    eye, commutation = node.left, node.right
    assert eye.sizes == (DimProduct((2, "m", "n")),) and commutation.sizes == ("m", 3)
    assert to_text(node) == "eye(2*m*n) + commutation(m, 3)"


def test_names_may_contain_digits_and_underscores() -> None:
    node = parse_text("x_1 + Sigma2")
    assert tree(node) == "(+ x_1 Sigma2)"


def test_nodes_construct_with_keywords_and_default_shapes() -> None:
    node = Num(pos=1, value=Fraction(2))
    assert node.shape == () and node.row is False
    assert Binary(pos=2, op="*", left=node, right=Name(pos=3, name="x")).op == "*"


def test_nodes_compare_by_identity() -> None:
    assert Name(pos=1, name="x") != Name(pos=1, name="x")


def test_post_order_puts_children_first() -> None:
    root = parse_text("a*b + c")
    order = [tree(node) for node in post_order(root)]
    assert order == ["a", "b", "(* a b)", "c", "(+ (* a b) c)"]


@pytest.mark.parametrize("text", [
    "x'*A*x", "-x^2", "(-x)^2", "a - (b - c)", "(a^b)^c", "a^b^c", "x^-1", "(A*B)'",
    "-(a*b)", "2.*x", "exp(-y.*(X*w)) + vector(1)", "vector(-2)*m'",
    "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))",
])
def test_to_text_parses_back_to_the_same_tree(text: str) -> None:
    root = parse_text(text)
    assert tree(parse_text(to_text(root))) == tree(root)


def test_to_text_uses_only_needed_parentheses() -> None:
    assert to_text(parse_text("((a*b)) + ((c))")) == "a*b + c"
    assert to_text(parse_text("0.5*x")) == "0.5*x"


def test_long_but_shallow_input_parses() -> None:
    text = "(" * 500 + "x" + ")" * 500
    assert tree(parse_text(text)) == "x"
