"""Bad input of every kind gets one MatdiffError: one line, pointing at the right column."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matdiff.errors import MatdiffError
from matdiff.syntax.parse import parse_text, parse_typed
from matdiff.syntax.types import parse_declarations

ANY = "any column"  # a column must be given, but the exact one is not pinned down here
NO_COLUMN = None


def balanced_sum(leaves: int) -> str:
    terms = ["x"] * leaves
    while len(terms) > 1:
        terms = [f"({a}+{b})" for a, b in zip(terms[::2], terms[1::2], strict=True)]
    return terms[0]


# (expression, declarations, expected column, fragment of the message)
SYNTAX = [
    ("", None, NO_COLUMN, "empty expression"),
    ("   ", None, NO_COLUMN, "empty expression"),
    ("(x", None, 1, "'(' at column 1 is never closed"),
    ("exp(x + (y", None, 9, "'(' at column 9 is never closed"),
    ("x + (", None, 5, "never closed"),
    ("x)", None, 2, "no '(' for it to close"),
    ("(x))", None, 4, "no '(' for it to close"),
    ("x +", None, 4, "expression ends too early"),
    ("x .*", None, 5, "'.*' needs something after it"),
    ("x'*", None, 4, "ends too early"),
    ("-", None, 2, "ends too early"),
    ("x + * y", None, 5, "unexpected '*'"),
    ("* x", None, 1, "unexpected '*'"),
    ("()", None, 2, "unexpected ')'"),
    ("(x+)", None, 4, "unexpected ')'"),
    ("sum(x,)", None, 7, "unexpected ')'"),
    ("x # y", None, 3, "unexpected character '#'"),
    ("x $", None, 3, "unexpected character '$'"),
    ("x = 2", None, 3, "unexpected '='"),
    ("A[1]", None, 2, "unexpected character '['"),
    ("x .. y", None, 3, "unexpected character '.'"),
    ("x − y", None, 3, "write - instead"),
    ("2x", None, 2, "unexpected name 'x'"),
    ("x y", None, 3, "operator such as * missing"),
    ("x 2", None, 3, "unexpected number 2"),
    ("x''''(", None, 6, "unexpected '('"),
    ("x ^^ 2", None, 4, "unexpected '^'"),
    ("'x", None, 1, """unexpected "'" (something is missing before "'")"""),
    ("x, y", None, 2, "commas only separate function arguments"),
    ("foo(x)", None, 1, "unknown function 'foo'"),
    ("Inv(A)", None, 1, "known functions: inv, det"),
    ("tr(A,B)", None, 1, "tr takes one argument, not 2"),
    ("tr()", None, 1, "tr takes one argument, not 0"),
    ("vector(x)", None, 8, "vector(...) needs a number"),
    ("matrix(2*a)", None, ANY, "matrix(...) needs a number"),
    ("exp + 1", None, 1, "exp is a function"),
    ("eye(3, 4)", None, 1, "eye takes one size"),
    ("eye(0)", None, 5, "a size is a dimension name or a positive whole number"),
    ("vector(1, n+1)", None, 12, "a size is a dimension name"),
    ("matrix(1, 2)", None, 1, "matrix takes one argument (or matrix(c, m, n)"),
    ("eye(x) + x*x'", "x: vector(n)", 1, "x is a variable, not a dimension"),
    ("pi(2)", None, 1, "pi is a constant"),
    ("commutation(m)", None, 1, "commutation takes two sizes"),
    ("commutation(m, 1.5)", None, 16, "a size is a dimension name"),
    ("kron(A)", None, 1, "kron takes two arguments"),
    ("vec(a)", None, 1, "vec needs a vector or a matrix"),
    ("1e99999", None, 1, "out of range"),
    ("-" * 250 + "x", None, ANY, "nested more than 200 levels"),
    ("exp(" * 300 + "x" + ")" * 300, None, ANY, "nested more than 200 levels"),
    ("x" * 100_001, None, NO_COLUMN, "the text_length limit is 100,000"),
    (balanced_sum(2**13), None, NO_COLUMN, "more than 10,000 parts"),
]

TYPING = [
    ("A + x", None, 3, "cannot add A (n×m matrix) and x (vector of size p)"),
    ("x + y'", None, 3, "(transpose one of them with ')"),
    ("A - x", None, 3, "cannot subtract x (vector of size p) from A (n×m matrix)"),
    ("x'*A + x", None, 6, "cannot add x'*A (row vector of size m) and x"),
    ("x' + x", None, 4, "x' (row vector of size n) and x (vector of size n)"),
    ("x + A*x", "A: matrix(3,2); x: vector(2)", 3, "A*x (vector of size 3)"),
    ("eye + A", "A: matrix(2,3)", 5, "cannot add eye"),
    ("vector(1) + A", None, 11, "cannot add vector(1) (vector of size n) and A"),
    ("x*y", None, 2, "cannot multiply x (vector of size n) and y (vector of size m)"),
    ("x*A", None, 2, "cannot multiply x"),
    ("x'*y'", None, 3, "row vector of size n"),
    ("A*x'", None, 2, "cannot multiply A"),
    ("A*x", "x: vector(3); A: matrix(2,2)", 2, "inner dimensions 2 and 3 differ"),
    ("A*B", "A: matrix(m,n); B: matrix(m,n)", 2, "inner dimensions n and m differ"),
    ("x'*y", "x: vector(2); y: vector(3)", 3, "inner dimensions 2 and 3 differ"),
    ("A/B", None, 2, "divide by a scalar; use ./ for elementwise division"),
    ("a/x", None, 2, "cannot divide a (scalar) by x (vector of size n)"),
    ("x .* A", None, 3, "cannot multiply elementwise"),
    ("x ./ y'", None, 3, "cannot divide x (vector of size n) elementwise by y'"),
    ("x .* y", "x: vector(2); y: vector(3)", 3, "vector of size 2"),
    ("x^2", None, 2, "use .^ for elementwise powers"),
    ("A^b", None, 2, "a matrix power needs a whole number"),
    ("A^0.5", None, 2, "a matrix power needs a whole number"),
    ("A^-1", None, 2, "use inv(...)"),
    ("A^0", None, 2, "a matrix power needs a whole number"),
    ("a^x", None, 2, "cannot raise a (scalar) to the power x"),
    ("2.^x", None, 2, "elementwise to the powers x"),
    ("A.^x", None, 2, "cannot raise A (n×m matrix) elementwise to the powers x"),
    ("A^2", "A: matrix(2,3)", 2, "a matrix power needs a square matrix, but A is a 2×3 matrix"),
    ("inv(x)", None, 1, "inv needs a square matrix, but x is a vector of size n"),
    ("inv(A*x)", None, 1, "but A*x is a vector of size n"),
    ("det(a)", None, 1, "det needs a square matrix, but a is a scalar"),
    ("tr(x*y')", "x: vector(2); y: vector(3)", 1, "x*y' is a 2×3 matrix"),
    ("logdet(A)", "A: matrix(2,3)", 1, "logdet needs a square matrix"),
    ("inv(A) + A", "A: matrix(m,n)", 1, "inv needs a square matrix, but A is a m×n matrix"),
    ("diag(a)", None, 1, "diag needs a vector or a square matrix"),
    ("diag(A)", "A: matrix(2,3)", 1, "but A is a 2×3 matrix"),
    ("exp(x) - exp(x')", None, 8, "cannot subtract exp(x') (row vector of size n)"),
]

DECLARATIONS = [
    ("x", "x: symmetric vector", 4, "x is a vector; 'symmetric' needs a square matrix"),
    ("A", "A: symmetric matrix(m,n)", 4, "A is a m×n matrix; 'symmetric' needs a square"),
    ("A", "A: posdef matrix(2,3)", 4, "'posdef' needs a square matrix"),
    ("a", "a: invertible scalar", 4, "a is a scalar; 'invertible' needs a square matrix"),
    ("x", "x: diagonal vector(3)", 4, "'diagonal' needs a square matrix"),
    ("pi", "pi: scalar", 1, "pi is a reserved name"),
    ("x", "x: vector; exp: scalar", 12, "exp is a reserved name"),
    ("x", "x: vector; x: matrix", 12, "x is declared twice"),
    ("x", "x, x: vector", 4, "x is declared twice"),
    ("S", "S: symetric matrix", 4, "unknown word 'symetric' in 'S: symetric matrix'"),
    ("S", "S: matrx", 4, "unknown word 'matrx'"),
    ("S", "S: (k,k)", 4, "unexpected '('"),
    ("x", "x vector", 1, "expected 'name: type' in 'x vector'"),
    ("x", "x: matrix(k)", 4, "matrix takes 2 dimensions, not 1"),
    ("x", "x: scalar(3)", 4, "scalar takes no dimensions"),
    ("x", "x: vector(0)", 11, "dimensions must be positive"),
    ("x", "x: vector(k", 12, "expected ',' or ')'"),
    ("x", "x: vector()", 11, "expected a dimension"),
    ("A", "A: matrix(k,k) symmetric", 16, "properties go before the shape"),
    ("x", "x:", 3, "missing the shape"),
    ("x", "2x: scalar", 1, "'2x' is not a variable name"),
    ("A", {"A": "symetric matrix"}, 1, "unknown word 'symetric' in 'A: symetric matrix'"),
    ("A", {"A": {"shape": ("k",), "props": ["symmetric"]}}, NO_COLUMN, "needs a square"),
    ("A", {"A": {"shape": "kk"}}, NO_COLUMN, "bad shape"),
    ("A", {"A": {"shape": (0, 2)}}, NO_COLUMN, "bad shape"),
    ("A", {"A": {"props": ["foo"]}}, NO_COLUMN, "unknown property 'foo'"),
    ("A", {"A": {"shap": (2, 2)}}, NO_COLUMN, "unknown key 'shap'"),
    ("A", {"A": 3}, NO_COLUMN, "cannot read the declaration of A"),
    ("A", {"eye": "matrix"}, NO_COLUMN, "eye is a reserved name"),
    ("A", 42, NO_COLUMN, "declarations must be text or a dict"),
]

CASES = SYNTAX + TYPING + DECLARATIONS


def test_there_are_plenty_of_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("text, declare, column, fragment", CASES,
                         ids=[f"{i}:{case[0][:20]!r}" for i, case in enumerate(CASES)])
def test_bad_input_raises_one_clear_error(text: str, declare, column, fragment: str) -> None:
    with pytest.raises(MatdiffError) as caught:
        parse_typed(text, declare)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert fragment in message
    if column is NO_COLUMN:
        assert error.column is None
    else:
        assert error.column is not None and error.source is not None
        assert 1 <= error.column <= len(error.source) + 1
        if column is not ANY:
            assert error.column == column
            assert message.startswith(f"at column {column}: ")


def test_declaration_errors_point_into_the_declaration_text() -> None:
    with pytest.raises(MatdiffError) as caught:
        parse_typed("x'*S*x", "S: symetric matrix")
    assert caught.value.source == "S: symetric matrix"
    assert caught.value.pointer() == "  S: symetric matrix\n     ^"


def test_syntax_errors_carry_the_expression() -> None:
    with pytest.raises(MatdiffError) as caught:
        parse_text("x + * y")
    assert caught.value.source == "x + * y"
    assert caught.value.pointer() == "  x + * y\n      ^"


def test_deep_parentheses_alone_are_fine_but_deep_trees_are_refused() -> None:
    assert parse_text("(" * 40_000 + "x" + ")" * 40_000) is not None
    with pytest.raises(MatdiffError, match="nested"):
        parse_text("-" * 90_000 + "x")
    with pytest.raises(MatdiffError, match="nested"):
        parse_text("x" + "'" * 90_000)


TOKENS = ["x", "y", "A", "B", "a", "2", "0.5", "pi", "eye", "+", "-", "*", "/", ".*", "./", "^",
          ".^", "'", "(", ")", ",", "inv(", "det(", "tr(", "diag(", "exp(", "sum(", "vector(",
          "matrix(", "vector(1)", " "]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_random_text_gives_a_result_or_a_matdiff_error(text: str) -> None:
    try:
        parse_typed(text)
    except MatdiffError as error:
        assert "\n" not in str(error)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join),
       st.sampled_from([None, "x: vector(3); A: matrix(3,3)", "A: symmetric matrix; y: vector(2)"]))
def test_random_token_soup_gives_a_result_or_a_matdiff_error(text: str, declare) -> None:
    try:
        root, _ = parse_typed(text, declare)
    except MatdiffError as error:
        assert "\n" not in str(error)
        if error.column is not None:
            assert 1 <= error.column <= len(error.source) + 1
    else:
        assert all(isinstance(dim, (str, int)) for dim in root.shape)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("xAS:;,() symetrcpodfnvalub1k2")), max_size=40))
def test_random_declarations_give_a_result_or_a_matdiff_error(spec: str) -> None:
    try:
        parse_declarations(spec)
    except MatdiffError as error:
        assert "\n" not in str(error)
