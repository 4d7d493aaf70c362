"""Declarations and shape inference: kinds, symbolic dimensions, each operator's typing rule."""

import pytest

import matdiff
from matdiff.errors import MatdiffError
from matdiff.syntax.parse import Binary, Call, Transpose, parse_text, parse_typed, post_order
from matdiff.syntax.types import Decl, infer, parse_declarations

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARATIONS = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
GMM = ("-0.5*sum(r)*log(det(S)) - 0.5*tr(inv(S)*(Y - vector(1)*m')'*diag(r)*"
       "(Y - vector(1)*m'))")
GMM_DECLARATIONS = "S: posdef matrix(k,k); r: vector(N); Y: matrix(N,k); m: vector(k)"


def shapes(text: str, declare=None) -> dict[str, tuple]:
    _, variables = parse_typed(text, declare)
    return {name: decl.shape for name, decl in variables.items()}


def result(text: str, declare=None) -> tuple[tuple, bool]:
    root, _ = parse_typed(text, declare)
    return root.shape, root.row


# --- declarations ---

def test_declaration_text_form() -> None:
    decls = parse_declarations("S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar")
    assert decls["S"] == Decl("S", ("k", "k"), frozenset({"symmetric", "posdef", "invertible"}))
    assert decls["x"] == Decl("x", ("k",), frozenset())
    assert decls["m"].shape == ("k",)
    assert decls["k"] == Decl("k", (), frozenset())


def test_declared_dimensions_may_be_products() -> None:
    """What r.declaration prints for a matrix beside vec(X) (m*n rows) reads back."""
    from matdiff.core.ir import dim_product

    decls = parse_declarations("W: matrix(n*m, 2*m*n); X: matrix(m,n)")
    assert decls["W"].shape == (dim_product("m", "n"), dim_product(2, "m", "n"))
    assert shapes("vec(X)'*W", "W: matrix(n*m, p); X: matrix(m,n)")["W"] == (
        dim_product("m", "n"), "p")
    for bad, column in (("W: matrix(m*, n)", 13), ("W: matrix(m*inv, n)", 13),
                        ("W: matrix(m*0, n)", 13)):
        with pytest.raises(MatdiffError) as err:
            parse_declarations(bad)
        assert err.value.column == column, err.value


def test_declaration_dict_of_text() -> None:
    decls = parse_declarations({"S": "symmetric posdef matrix(k,k)", "x": "vector(3)"})
    assert decls["S"].shape == ("k", "k") and "posdef" in decls["S"].props
    assert decls["x"].shape == (3,)


def test_declaration_dict_of_dicts() -> None:
    decls = parse_declarations({"S": {"shape": ("k", "k"), "props": ["posdef"]},
                                "x": {"shape": ["k"]}, "c": {}})
    assert decls["S"].props == frozenset({"posdef", "symmetric", "invertible"})
    assert decls["x"].shape == ("k",)
    assert decls["c"] == Decl("c", (), frozenset())


@pytest.mark.parametrize("spec", [None, "", "  ;  ", {}])
def test_no_declarations(spec) -> None:
    assert parse_declarations(spec) == {}


def test_implied_properties() -> None:
    decls = parse_declarations("P: posdef matrix; D: diagonal matrix; v: positive vector")
    assert decls["P"].props == frozenset({"posdef", "symmetric", "invertible"})
    assert decls["D"].props == frozenset({"diagonal", "symmetric"})
    assert decls["v"].props == frozenset({"positive"})


def test_omitted_dimensions_are_left_to_inference() -> None:
    decls = parse_declarations("A: matrix; x: vector; s: scalar")
    assert decls["A"].shape == (None, None) and decls["x"].shape == (None,)
    assert decls["s"].shape == ()


def test_trailing_semicolon_and_spacing() -> None:
    decls = parse_declarations("  A :matrix( 2 , n ) ;")
    assert decls["A"].shape == (2, "n")


# --- default kinds and fresh dimensions ---

def test_default_kind_by_first_letter() -> None:
    assert shapes("a*g*h*z'*A*Z*y") == {
        "a": (), "g": (), "h": ("n",), "z": ("m",), "A": ("m", "p"), "Z": ("p", "q"),
        "y": ("q",)}


def test_constants_are_not_variables() -> None:
    root, variables = parse_typed("pi*eye*x")
    assert list(variables) == ["x"]
    assert root.shape == ("n",)


def test_quadratic_form_names_dimensions_n() -> None:
    assert shapes("x'*A*x") == {"x": ("n",), "A": ("n", "n")}
    assert result("x'*A*x") == ((), False)


def test_fresh_names_skip_declared_names() -> None:
    assert shapes("A*x", "n: scalar") == {"A": ("m", "p"), "x": ("p",)}
    assert shapes("A*x", "A: matrix(m, q)") == {"A": ("m", "q"), "x": ("q",)}


def test_fresh_names_skip_variable_names() -> None:
    assert shapes("n'*x") == {"n": ("m",), "x": ("m",)}


def test_fresh_names_run_past_the_list() -> None:
    names = "+".join(f"h{i}'*h{i}" for i in range(12))
    assert [s[0] for s in shapes(names).values()][-3:] == ["w", "d1", "d2"]


def test_undeclared_variables_have_no_properties() -> None:
    _, variables = parse_typed("x'*A*x", "A: symmetric matrix")
    assert variables["x"].props == frozenset()
    assert variables["A"].props == frozenset({"symmetric"})
    assert variables["A"].shape == ("n", "n")


def test_variables_are_listed_in_order_of_appearance() -> None:
    _, variables = parse_typed("b*y + c*x")
    assert list(variables) == ["b", "y", "c", "x"]


def test_every_node_gets_a_shape() -> None:
    root, _ = parse_typed("x'*A*x + sum(exp(B*y))")
    for node in post_order(root):
        assert all(isinstance(dim, (str, int)) for dim in node.shape)
    transposed = root.left.left.left
    assert isinstance(transposed, Transpose) and transposed.shape == ("n",) and transposed.row


def test_infer_accepts_a_hand_parsed_tree() -> None:
    root = parse_text("A*x")
    variables = infer(root, parse_declarations("x: vector(3)"), "A*x")
    assert variables["A"].shape == ("n", 3) and root.shape == ("n",)


# --- declared and concrete dimensions ---

def test_declared_dimensions_unify() -> None:
    assert result("S*x", "S: matrix(k,k); x: vector(k)") == (("k",), False)


def test_integer_dimensions() -> None:
    assert shapes("A*x", "x: vector(3); A: matrix(2,3)") == {"A": (2, 3), "x": (3,)}
    assert shapes("A*x + y", "y: vector(5)") == {"A": (5, "n"), "x": ("n",), "y": (5,)}


def test_square_properties_make_undimensioned_matrix_square() -> None:
    assert shapes("S*x", "S: symmetric matrix")["S"] == ("n", "n")
    assert shapes("S*x", "S: matrix")["S"] == ("n", "m")


def test_declared_scalar_used_as_dimension_name() -> None:
    assert shapes(GAUSSIAN, GAUSSIAN_DECLARATIONS) == {
        "k": (), "S": ("k", "k"), "x": ("k",), "m": ("k",)}


# --- operator rules ---

@pytest.mark.parametrize("text, shape, row", [
    ("x'", ("n",), True),
    ("x''", ("n",), False),
    ("A'", ("m", "n"), False),
    ("a'", (), False),
    ("x + y", ("n",), False),
    ("x' - y'", ("n",), True),
    ("A + B'", ("n", "m"), False),
    ("a - b", (), False),
    ("2*A", ("n", "m"), False),
    ("x'*c", ("n",), True),
    ("A*B", ("n", "p"), False),
    ("A*x", ("n",), False),
    ("x'*A", ("m",), True),
    ("x'*y", (), False),
    ("x*y'", ("n", "m"), False),
    ("A/2", ("n", "m"), False),
    ("x'/sum(x)", ("n",), True),
    ("x .* y", ("n",), False),
    ("2 .* A", ("n", "m"), False),
    ("A ./ b", ("n", "m"), False),
    ("x' .* y'", ("n",), True),
    ("a^b", (), False),
    ("A^3", ("n", "n"), False),
    ("A^(2)", ("n", "n"), False),
    ("x.^2", ("n",), False),
    ("x.^y", ("n",), False),
    ("a.^b", (), False),
    ("-x", ("n",), False),
    ("inv(A)", ("n", "n"), False),
    ("det(A)", (), False),
    ("logdet(A)", (), False),
    ("tr(A)", (), False),
    ("sum(A)", (), False),
    ("norm1(x)", (), False),
    ("norm2(x')", (), False),
    ("diag(x)", ("n", "n"), False),
    ("diag(x')", ("n", "n"), False),
    ("diag(A)", ("n",), False),
    ("exp(x')", ("n",), True),
    ("relu(A)", ("n", "m"), False),
    ("sqrt(a)", (), False),
    ("vector(1)", ("n",), False),
    ("matrix(0)", ("n", "m"), False),
    ("eye", ("n", "n"), False),
])
def test_operator_rules(text: str, shape: tuple, row: bool) -> None:
    assert result(text) == (shape, row)


@pytest.mark.parametrize("fn", ["exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "abs",
                                "sign", "relu"])
def test_elementwise_functions_keep_shape(fn: str) -> None:
    assert result(f"{fn}(A)") == (("n", "m"), False)
    assert result(f"{fn}(x')") == (("n",), True)
    assert result(f"{fn}(a)") == ((), False)


def test_square_functions_make_arguments_square() -> None:
    for fn in ("inv", "det", "logdet", "tr", "diag"):
        assert shapes(f"{fn}(A)") == {"A": ("n", "n")}
    assert shapes("A^2") == {"A": ("n", "n")}


def test_filled_arrays_take_their_size_from_context() -> None:
    root, variables = parse_typed("exp(-y.*(X*w)) + vector(1)")
    assert variables["X"].shape == ("n", "m")
    assert isinstance(root, Binary) and isinstance(root.right, Call)
    assert root.right.shape == variables["X"].shape[:1]
    assert shapes("X*w + vector(2)", "X: matrix(N, d)") == {"X": ("N", "d"), "w": ("d",)}
    root, _ = parse_typed("A + matrix(1)", "A: matrix(2, 3)")
    assert root.right.shape == (2, 3)


def test_identity_takes_its_size_from_context() -> None:
    root, _ = parse_typed("A + eye", "A: matrix(k, k)")
    assert root.right.shape == ("k", "k")
    root, _ = parse_typed("eye*x", "x: vector(4)")
    assert root.left.shape == (4, 4)


def test_unconstrained_filled_array_still_gets_a_name() -> None:
    root, variables = parse_typed("sum(vector(1))")
    assert variables == {} and root.shape == ()
    assert root.args[0].shape == ("n",)


def test_two_identities_are_independent() -> None:
    root, _ = parse_typed("sum(eye) + sum(eye)", "n: scalar")
    assert root.left.args[0].shape == ("m", "m")
    assert root.right.args[0].shape == ("p", "p")


# --- worked examples ---

def test_gaussian_density() -> None:
    root, variables = parse_typed(GAUSSIAN, GAUSSIAN_DECLARATIONS)
    assert root.shape == ()
    assert variables["S"].props >= {"symmetric", "posdef", "invertible"}
    assert variables["k"] == Decl("k", (), frozenset())
    for node in post_order(root):
        assert set(node.shape) <= {"k"}


def test_gaussian_mixture_m_step() -> None:
    root, variables = parse_typed(GMM, GMM_DECLARATIONS)
    assert root.shape == ()
    assert {name: decl.shape for name, decl in variables.items()} == {
        "r": ("N",), "S": ("k", "k"), "Y": ("N", "k"), "m": ("k",)}
    filled = [node for node in post_order(root) if isinstance(node, Call) and node.fn == "vector"]
    assert [node.shape for node in filled] == [("N",), ("N",)]
    diag = next(node for node in post_order(root) if isinstance(node, Call) and node.fn == "diag")
    assert diag.shape == ("N", "N")


def test_gaussian_mixture_without_declarations_infers_consistent_sizes() -> None:
    root, variables = parse_typed(GMM)
    rows = variables["Y"].shape[0]
    assert variables["r"].shape == (rows,)
    assert variables["S"].shape == (variables["m"].shape[0],) * 2
    assert root.shape == ()


def vector(dim: str) -> dict:
    return {"shape": (dim,), "props": []}


def matrix(rows: str, cols: str, *props: str) -> dict:
    return {"shape": (rows, cols), "props": list(props)}


@pytest.mark.parametrize("text, variables, shape", [
    ("a'*X*b", {"a": vector("m"), "X": matrix("m", "n"), "b": vector("n")}, ()),
    ("tr(A*X'*B*X*C)", {"A": matrix("p", "n"), "X": matrix("m", "n"), "B": matrix("m", "m"),
                        "C": matrix("n", "p")}, ()),
    ("a'*inv(X)*b", {"a": vector("n"), "X": matrix("n", "n", "invertible"), "b": vector("n")},
     ()),
    ("log(det(inv(X)))", {"X": matrix("n", "n", "invertible")}, ()),
    ("A*exp(x)", {"A": matrix("m", "n"), "x": vector("n")}, ("m",)),
    ("norm2(A*x - y)^2", {"A": matrix("m", "n"), "x": vector("n"), "y": vector("m")}, ()),
    ("A*X*B", {"A": matrix("p", "m"), "X": matrix("m", "n"), "B": matrix("n", "q")},
     ("p", "q")),
    ("exp(x)/sum(exp(x))", {"x": vector("n")}, ("n",)),
    ("sum(log(exp(-y.*(X*w)) + vector(1)))", {"X": matrix("N", "n"), "y": vector("N"),
                                               "w": vector("n")}, ()),
    ("det(2*pi*S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))",
     {"x": vector("k"), "m": vector("k"), "S": matrix("k", "k", "posdef")}, ()),
])
def test_reference_expressions_type_check(text: str, variables: dict, shape: tuple) -> None:
    root, used = parse_typed(text, variables)
    assert root.shape == shape
    assert {name: decl.shape for name, decl in used.items()} == {
        name: spec["shape"] for name, spec in variables.items()}


def test_type_errors_carry_the_source() -> None:
    with pytest.raises(MatdiffError) as caught:
        parse_typed("A + x")
    assert caught.value.source == "A + x"
    assert caught.value.pointer().endswith("\n    ^")


def test_a_scalar_added_to_an_array_fills_it() -> None:
    import matdiff

    assert matdiff.parse("1 + exp(x)") is matdiff.parse("vector(1) + exp(x)")
    assert matdiff.parse("exp(x) - 2") is matdiff.parse("exp(x) - 2*vector(1)")
    assert matdiff.parse("A + c") is matdiff.parse("A + c*matrix(1)")
    assert matdiff.parse("1 + 2 + x") is matdiff.parse("3*vector(1) + x")
    root, _ = parse_typed("a + x'")
    assert root.shape == ("n",) and root.row
    root = parse_text("1 + x")
    with pytest.raises(MatdiffError, match="use c\\*vector\\(1\\)"):
        infer(root, {}, "1 + x", broadcast=False)


@pytest.mark.parametrize("expr, wrt", [("sum(log(1 + exp(-y.*(X*w))))", "w"),
                                       ("x'*(A + c)*x", "c"), ("x'*(A + c)*x", "A"),
                                       ("sum((c - x).^2)", "c")])
def test_broadcast_sums_differentiate_correctly(expr: str, wrt: str) -> None:
    import matdiff

    assert matdiff.derive(expr, wrt).check() < 1e-8


@pytest.mark.parametrize("text, declare, named, fix", [
    ("(2*pi)^(-k/2)*x'*x", None, "undeclared k is a vector", "k: scalar"),
    ("a*x + A", None, "undeclared a, x, A are typed", "A: vector"),
    ("x*y", "x: vector(n)", None, None),  # declared x; y alone: the hint is the usual one
])
def test_a_type_error_names_the_variables_typed_by_their_letter(text, declare, named, fix):
    with pytest.raises(MatdiffError) as caught:
        matdiff.parse(text, declare)
    message = str(caught.value)
    if named is None:
        assert "undeclared" not in message
        return
    assert named in message and f"'{fix}'" in message
    # the suggested declaration is a fix: with it, the text types
    matdiff.parse(text, fix)
