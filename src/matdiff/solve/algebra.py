"""Equations G(X) = 0 in one unknown X, on the core IR: the algebraic moves a person makes.

An equation is a list of terms (coefficient, IR node) of X's shape that sum to zero. The moves:

- ``expand``: distribute products over the sums that hold X or an inverse, so each term shows
  its factors (sums of data alone, such as a scatter matrix, stay factored);
- ``clear_inverses``: multiply through by an invertible factor (A on the left and/or the
  right for inv(A), u.^k elementwise for u.^-k, v^k for a scalar v^-k), which keeps the
  solution set, until the equation is affine in X;
- ``invert_function``: k.*f(u) = C with f one-to-one (exp, log) becomes u = f^-1(C./k);
- ``linear_form``: split the affine equation into L(X) = C with every term of L a product
  s*A*X*B (A or B the identity where absent);
- ``solve_linear``: A*X = C -> inv(A)*C, X*B = C -> C*inv(B), s*X = C -> C/s, one A*X*B = C
  -> inv(A)*C*inv(B); a sum with the same side is factored first.

Each move returns a reason when it does not apply; the caller turns it into "no closed form".
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from math import gcd

from ..core import ir
from ..core.ir import Expr
from ..core.simplify import is_positive, simplify, split_coefficient

Term = tuple[Fraction, Expr]
MAX_TERMS = 200        # an expansion past this is not a person's algebra any more
MAX_CLEARING = 4       # inverses cleared one after another
POSDEF, SEMIDEFINITE = "positive definite", "positive semidefinite"


class NoClosedForm(Exception):
    """The equation is outside what these moves solve; ``args[0]`` says why, with ``{part}``
    where the offending ``part`` (an IR node) is to be printed."""

    def __init__(self, reason: str, part: Expr | None = None):
        super().__init__(reason)
        self.part = part


# -- the equation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Equation:
    """sum(c * t for c, t in terms) = 0, every term of ``shape``."""

    terms: tuple[Term, ...]
    shape: tuple

    def expr(self) -> Expr:
        return total(self.terms, self.shape)


def total(terms, shape) -> Expr:
    terms = [(c, t) for c, t in terms if c != 0 and t.op != "zero"]
    return simplify(ir.add(terms)) if terms else ir.zero(shape)


def _inverse_nodes(e: Expr) -> set[int]:
    """ids of the nodes of e that hold an inverse (inv, or a negative power) somewhere."""
    holds: set[int] = set()
    for node in ir.topological(e):
        if _is_inverse(node) or any(id(a) in holds for a in node.args):
            holds.add(id(node))
    return holds


def _is_inverse(node: Expr) -> bool:
    if node.op == "inv":
        return True
    return node.op == "pow" and node.args[1].op == "num" and node.args[1].data < 0


def expand(e: Expr, x: Expr) -> list[Term]:
    """e as a sum of products: products distributed over the sums that depend on x or hold an
    inverse; like terms collected."""
    holds = _inverse_nodes(e)

    def interesting(n: Expr) -> bool:
        return id(n) in holds or ir.depends_on(n, x.data[0])

    def walk(n: Expr) -> list[Term]:
        if not interesting(n):
            return [(Fraction(1), n)]
        if n.op == "sum":
            return [(c * c2, t2) for c, t in zip(n.data, n.args) for c2, t2 in walk(t)]
        if n.op == "einsum":
            parts = [walk(a) for a in n.args]
            count = 1
            for p in parts:
                count *= len(p)
            if count > MAX_TERMS:
                raise NoClosedForm(f"expanding the products gives more than {MAX_TERMS} terms")
            out = []
            for combo in product(*parts):
                c = Fraction(1)
                for c2, _ in combo:
                    c *= c2
                node = simplify(Expr("einsum", tuple(t for _, t in combo), n.data, n.shape))
                c2, rest = split_coefficient(node)
                if rest.op == "sum" and rest is not n:
                    out.extend((c * c2 * c3, t3) for c3, t3 in walk(rest))
                else:
                    out.append((c * c2, rest))
            return out
        return [(Fraction(1), n)]

    return collect(walk(simplify(e)))


def collect(terms: list[Term]) -> list[Term]:
    """Like terms added, zeros dropped, order kept."""
    coefficients: dict[int, Fraction] = {}
    nodes: dict[int, Expr] = {}
    for c, t in terms:
        c2, t = split_coefficient(t)
        if t.op == "zero":
            continue
        coefficients[id(t)] = coefficients.get(id(t), Fraction(0)) + c * c2
        nodes[id(t)] = t
    return [(c, nodes[k]) for k, c in coefficients.items() if c != 0]


def equation(gradient: Expr, x: Expr) -> Equation:
    return Equation(tuple(expand(reciprocal_diagonals(gradient), x)), gradient.shape)


def reciprocal_diagonals(e: Expr) -> Expr:
    """inv(diag(s)) written diag(s.^-1), so that an entrywise multiplication clears it."""
    mapping = {}
    for node in ir.topological(e):
        if node.op == "inv" and _diagonal_of(node.args[0]) is not None:
            s = _diagonal_of(node.args[0])
            mapping[node] = ir.einsum([(ir.delta(s.shape[0]), (0, 1)),
                                       (ir.power(s, -1), (0,))], (0, 1))
    return simplify(ir.substitute(e, mapping)) if mapping else e


def _diagonal_of(a: Expr) -> Expr | None:
    """s where a = diag(s) (the identity times the vector s along one index), else None."""
    if a.op != "einsum" or len(a.args) != 2 or a.data[1] != (0, 1):
        return None
    (d, di), (s, si) = sorted(zip(a.args, a.data[0]), key=lambda f: f[0].op != "delta")
    if d.op == "delta" and di == (0, 1) and s.ndim == 1 and si in ((0,), (1,)):
        return s
    return None


# -- clearing inverses -------------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    """Multiply the equation through by ``factor`` on ``side``: "left", "right", "both"
    (A*G*A), "elementwise" (u.^k .* G) or "scalar" (v^k*G)."""

    factor: Expr
    side: str

    def apply(self, t: Expr) -> Expr:
        a = self.factor
        if self.side == "left":
            return _product([(a, (0, 2)), (t, (2,) + tuple(range(1, t.ndim)))], t.ndim)
        if self.side == "right":
            return _product([(t, (0, 2)), (a, (2, 1))], 2)
        if self.side == "both":
            return _product([(a, (0, 2)), (t, (2, 3)), (a, (3, 1))], 2)
        out = tuple(range(t.ndim))
        return _product([(a, out if self.side == "elementwise" else ()), (t, out)], t.ndim)


def _product(factors, ndim: int) -> Expr:
    return ir.einsum(factors, tuple(range(ndim)))


def _inverse_factors(t: Expr):
    """The inverse factors of a term: inv(A) nodes and negative powers among its factors."""
    factors = t.args if t.op == "einsum" else (t,)
    return [f for f in factors if _is_inverse(f)]


def _candidate_moves(eq: Equation) -> list[Move]:
    moves: list[Move] = []
    seen: set[tuple[int, str]] = set()

    def add(factor: Expr, side: str) -> None:
        if (id(factor), side) not in seen:
            seen.add((id(factor), side))
            moves.append(Move(factor, side))

    shape = eq.shape
    for _, t in eq.terms:
        for f in _inverse_factors(t):
            if f.op == "inv":
                a = simplify(f.args[0])
                p = a.shape[0]
                # inv(A) may stand transposed in a term (inv(A)' = inv(A')): A' clears that
                for m in (a, simplify(ir.transpose(a))):
                    if len(shape) >= 1 and shape[0] == p:
                        add(m, "left")
                    if len(shape) == 2 and shape[1] == p:
                        add(m, "right")
                        if shape[0] == p:
                            add(m, "both")
            else:
                base, k = f.args
                factor = simplify(ir.power(base, -k.data))
                if base.ndim == 0:
                    add(factor, "scalar")
                elif base.shape == shape:
                    add(factor, "elementwise")
    return moves


def inverse_count(eq: Equation) -> int:
    return sum(len(_inverse_factors(t)) for _, t in eq.terms)


def is_affine(eq: Equation, x: Expr) -> bool:
    try:
        linear_form(eq, x)
    except NoClosedForm:
        return False
    return True


def clear_inverses(eq: Equation, x: Expr) -> list[tuple[Move, Equation]]:
    """The multiplications that take the equation to one without inverses (or, failing
    that, to an affine one): each move and the equation after it."""
    done: list[tuple[Move, Equation]] = []
    for _ in range(MAX_CLEARING):
        count = inverse_count(eq)
        if count == 0:
            break
        best = None
        for move in _candidate_moves(eq):
            terms = []
            for c, t in eq.terms:
                terms.extend((c * c2, t2) for c2, t2 in expand(move.apply(t), x))
            new = Equation(tuple(collect(terms)), eq.shape)
            score = (not is_affine(new, x), inverse_count(new), len(new.terms))
            if inverse_count(new) < count and (best is None or score < best[0]):
                best = (score, move, new)
        if best is None:
            break
        done.append((best[1], best[2]))
        eq = best[2]
    return done


# -- one-to-one functions ----------------------------------------------------------------------

INVERSE_FUNCTIONS = {"exp": "log", "log": "exp"}   # each one-to-one where it is defined


def invert_function(eq: Equation, x: Expr) -> tuple[str, Equation] | None:
    """k .* f(u) + C = 0 with the unknown only in u, f one-to-one (exp, log): u = f^-1(-C./k),
    (the function's name, the new equation); None where the equation is not of that form."""
    name = x.data[0]
    varying = [(c, t) for c, t in eq.terms if ir.depends_on(t, name)]
    if len(varying) != 1:
        return None
    (c, t), = varying
    t = _as_einsum(t)
    out = t.data[1]
    at = [k for k, f in enumerate(t.args) if ir.depends_on(f, name)]
    if len(at) != 1 or t.args[at[0]].op not in INVERSE_FUNCTIONS or t.data[0][at[0]] != out:
        return None
    fu = t.args[at[0]]
    coefficient = [(f, idx) for k, (f, idx) in enumerate(zip(t.args, t.data[0])) if k != at[0]]
    if any(idx not in ((), out) for _, idx in coefficient):
        return None                   # a coefficient that mixes entries: not entrywise
    constant = total([(-c2 / c, t2) for c2, t2 in eq.terms if (c2, t2) not in varying],
                     eq.shape)
    inverses = [(ir.power(f, -1), idx) for f, idx in coefficient]
    value = simplify(ir.einsum([(constant, out)] + inverses, out))
    u = fu.args[0]
    scalar = _broadcast_of(value)   # s*vector(1): f^-1(s) broadcast, not f^-1 of the ones
    solved = ir.apply(INVERSE_FUNCTIONS[fu.op], value) if scalar is None else \
        ir.broadcast(ir.apply(INVERSE_FUNCTIONS[fu.op], scalar), value.shape)
    new = expand(ir.add([(1, u), (-1, solved)]), x)
    return fu.op, Equation(tuple(new), eq.shape)


def _broadcast_of(e: Expr) -> Expr | None:
    """s where e is the scalar s times ones on every axis, else None."""
    c, t = split_coefficient(e)
    if not e.ndim or t.op != "einsum":
        return None
    out = t.data[1]
    ones = [idx for f, idx in zip(t.args, t.data[0]) if f.op == "ones"]
    scalars = [f for f, idx in zip(t.args, t.data[0]) if not idx]
    if sorted(i for idx in ones for i in idx) != sorted(out) or \
            len(ones) + len(scalars) != len(t.args):
        return None
    return simplify(ir.einsum([(ir.num(c), ())] + [(f, ()) for f in scalars], ()))


# -- the linear form ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearTerm:
    """c * s * A * X * B (A, B None for the identity; s a scalar, num(1) if none)."""

    c: Fraction
    s: Expr
    a: Expr | None
    b: Expr | None


def _fresh(t: Expr) -> int:
    used = [i for idx in t.data[0] for i in idx] + list(t.data[1])
    return max(used, default=-1) + 1


def _as_einsum(t: Expr) -> Expr:
    if t.op == "einsum":
        return t
    out = tuple(range(t.ndim))
    return Expr("einsum", (t,), ((out,), out), t.shape)


def _split_term(c: Fraction, t: Expr, x: Expr) -> LinearTerm:
    name = x.data[0]
    t = _as_einsum(t)
    factors = list(zip(t.args, t.data[0]))
    at = [k for k, (f, _) in enumerate(factors) if ir.depends_on(f, name)]
    if len(at) != 1 or factors[at[0]][0] is not x:
        raise NoClosedForm(_why_not_linear([factors[k][0] for k in at], x))
    (_, x_idx), = [factors[at[0]]]
    del factors[at[0]]
    out = t.data[1]
    nxt = _fresh(t)
    # X's axes get fresh indices tied to the old ones by identities, so that an index X shares
    # with the output or a Hadamard factor still separates the sides
    fresh = tuple(range(nxt, nxt + x.ndim))
    for old, new, d in zip(x_idx, fresh, x.shape):
        factors.append((ir.delta(d), (old, new)))
    if x.ndim == 0:
        return LinearTerm(c, simplify(ir.einsum(factors, ())), None, None)
    if x.ndim == 1:
        a = simplify(ir.einsum(factors, (out[0], fresh[0])))
        s, a = _scalar_identity(a)
        return LinearTerm(c, s, a, None)
    groups = _components(factors)
    i, j = out
    row, col = fresh
    sides = _sides(groups, {i, row}, {col, j})
    if sides is None:           # X' stands in the term: A*X'*B, which is A*X*B for symmetric X
        sides = _sides(groups, {i, col}, {row, j})
        if sides is None:
            raise NoClosedForm(f"a term is not a product (...)*{name}*(...) (it holds a trace "
                               f"or an entrywise product of {name})")
        if "symmetric" not in x.data[1]:
            raise NoClosedForm(f"a term holds {name}', which is only {name} for a symmetric "
                               f"{name}")
        row, col = col, row
    left, right, scalars = sides
    s = simplify(ir.einsum(scalars, ())) if scalars else ir.num(1)
    s1, a = _scalar_identity(simplify(ir.einsum(left, (i, row))))
    s2, b = _scalar_identity(simplify(ir.einsum(right, (col, j))))
    return LinearTerm(c, simplify(ir.einsum([(s, ()), (s1, ()), (s2, ())], ())), a, b)


def _sides(groups, left_indices: set, right_indices: set):
    """(left factors, right factors, scalar factors) where no group touches both sides."""
    left, right, scalars = [], [], []
    for factors, indices in groups:
        on_left, on_right = bool(indices & left_indices), bool(indices & right_indices)
        if on_left and on_right:
            return None
        (left if on_left else right if on_right else scalars).extend(factors)
    return left, right, scalars


def _why_not_linear(factors: list[Expr], x: Expr) -> str:
    """Where x sits nonlinearly in a term, for the message."""
    name = x.data[0]
    if len(factors) > 1:
        return f"a term of the gradient has {name} in more than one factor (it is not linear " \
               f"in {name}, and no inverse clears that)"
    (f,) = factors
    for node in reversed(ir.topological(f)):
        if node.op in ir.PRIMITIVES and ir.depends_on(node, name):
            what = {"pow": "the power", "inv": "the inverse", "det": "the determinant",
                    "logdet": "the log-determinant", "mpow": "the matrix power"}.get(
                        node.op)
            what = f"{what} " if what else ""
            raise NoClosedForm(f"{name} stays inside {what}{{part}} in the gradient, which "
                               f"multiplying through does not clear", node)
    return f"the gradient is not linear in {name}"


def _components(factors) -> list[tuple[list, set]]:
    """Factors grouped by shared indices: (factors, indices) per connected group."""
    groups: list[tuple[list, set]] = []
    for f in factors:
        merged = ([f], set(f[1]))
        rest = []
        for g in groups:
            if g[1] & merged[1]:
                merged = (g[0] + merged[0], g[1] | merged[1])
            else:
                rest.append(g)
        groups = rest + [merged]
    return groups


def _scalar_identity(a: Expr) -> tuple[Expr, Expr | None]:
    """(s, None) where a = s*eye, else (num(1), a)."""
    c, rest = split_coefficient(a)
    if rest.op == "delta":
        return ir.num(c), None
    if rest.op == "einsum":
        out = rest.data[1]
        factors = list(zip(rest.args, rest.data[0]))
        eyes = [k for k, (f, idx) in enumerate(factors) if f.op == "delta" and idx == out]
        others = [f for k, f in enumerate(factors) if k not in eyes[:1]]
        # the other factors contract among themselves: a scalar such as sum(r) = r'*vector(1)
        if eyes and not any(set(idx) & set(out) for _, idx in others):
            return simplify(ir.einsum([(ir.num(c), ())] + others, ())), None
    return ir.num(1), a


def linear_form(eq: Equation, x: Expr) -> tuple[list[LinearTerm], list[Term]]:
    """(L, constant terms) with L(X) + constants = 0; NoClosedForm where not affine."""
    linear, constant = [], []
    for c, t in eq.terms:
        if ir.depends_on(t, x.data[0]):
            linear.append(_split_term(c, t, x))
        else:
            constant.append((c, t))
    if not linear and not constant:
        raise NoClosedForm(f"the gradient is zero for every {x.data[0]}: every point is "
                           f"stationary")
    if not linear:
        raise NoClosedForm(f"the equation {{part}} = 0 does not involve {x.data[0]}: no "
                           f"{x.data[0]} is stationary (where it is not 0 itself)", eq.expr())
    return linear, constant


def content(linear: list[LinearTerm]) -> Fraction:
    """The common rational factor of the coefficients, with the first one's sign."""
    num = 0
    den = 1
    for t in linear:
        num = gcd(num, t.c.numerator)
        den = den * t.c.denominator // gcd(den, t.c.denominator)
    g = Fraction(num, den)
    return g if linear[0].c > 0 else -g


# -- solving the linear equation ---------------------------------------------------------------

@dataclass(frozen=True)
class LinearSolution:
    """X = solution, and how: ``kind`` "scalar" (s*X = C), "left" (A*X = C), "right"
    (X*B = C) or "both" (A*X*B = C); ``operator`` the A or B that was inverted."""

    solution: Expr
    lhs: Expr
    rhs: Expr
    kind: str
    operator: Expr | None
    inverted: tuple[Expr, ...] = ()     # the matrices the solution inverts


def _scaled(s: Expr, m: Expr | None, d) -> Expr:
    base = m if m is not None else ir.delta(d)
    return ir.einsum([(s, ()), (base, (0, 1))], (0, 1))


def solve_linear(linear: list[LinearTerm], constant: list[Term], x: Expr) -> LinearSolution:
    """Solve L(X) = C, C the negated constant terms, after dividing by the coefficients'
    common factor."""
    g = content(linear)
    linear = [LinearTerm(t.c / g, t.s, t.a, t.b) for t in linear]
    rhs = total([(-c / g, t) for c, t in constant], x.shape)
    lhs = total([(t.c, _applied(t, x)) for t in linear], x.shape)
    name = x.data[0]
    if all(t.a is None and t.b is None for t in linear):
        s = total([(t.c, t.s) for t in linear], ())
        return LinearSolution(simplify(ir.einsum([(ir.power(s, -1), ()), (rhs, _axes(x))],
                                                 _axes(x))), lhs, rhs, "scalar", s)
    if all(t.b is None for t in linear):
        a = total([(t.c, _scaled(t.s, t.a, x.shape[0])) for t in linear], (x.shape[0],) * 2)
        inner = x.ndim   # the index inv(A) shares with C: 1 for a vector, 2 for a matrix
        sol = ir.einsum([(ir.apply("inv", a), (0, inner)), (rhs, (inner,) + _axes(x)[1:])],
                        _axes(x))
        return LinearSolution(simplify(sol), lhs, rhs, "left", a, (a,))
    if x.ndim == 2 and all(t.a is None for t in linear):
        b = total([(t.c, _scaled(t.s, t.b, x.shape[1])) for t in linear], (x.shape[1],) * 2)
        sol = ir.einsum([(rhs, (0, 2)), (ir.apply("inv", b), (2, 1))], (0, 1))
        return LinearSolution(simplify(sol), lhs, rhs, "right", b, (b,))
    if len(linear) == 1:
        (t,) = linear
        sol = ir.einsum([(ir.power(ir.einsum([(ir.num(t.c), ()), (t.s, ())], ()), -1), ()),
                         (ir.apply("inv", t.a), (0, 2)), (rhs, (2, 3)),
                         (ir.apply("inv", t.b), (3, 1))], (0, 1))
        return LinearSolution(simplify(sol), lhs, rhs, "both", None, (t.a, t.b))
    raise NoClosedForm(f"the equation in {name} has terms A*{name}, {name}*B and A*{name}*B "
                       f"together (a Sylvester-type equation)")


def _axes(x: Expr) -> tuple[int, ...]:
    return tuple(range(x.ndim))


def _applied(t: LinearTerm, x: Expr) -> Expr:
    """s * A * X * B as IR."""
    if x.ndim == 0:
        return simplify(ir.einsum([(t.s, ()), (x, ())], ()))
    factors = [(t.s, ())]
    row, col = 10, 11
    factors.append((x, (row, col)[:x.ndim]))
    out = [row, col][:x.ndim]
    if t.a is not None:
        factors.append((t.a, (0, row)))
        out[0] = 0
    if t.b is not None:
        factors.append((t.b, (col, 1)))
        out[1] = 1
    return simplify(ir.einsum(factors, tuple(out)))


def definiteness(m: Expr) -> str | None:
    """"positive definite", "positive semidefinite" or None (not provable) for a symmetric
    matrix built as a person builds normal matrices: positive multiples of eye and of posdef
    variables, and Gram matrices B'*B, B'*diag(q)*B with q positive, summed."""
    c, t = split_coefficient(m)
    if t.op == "sum":
        kinds = [definiteness(scaled_term) for scaled_term in
                 (ir.scale(c * c2, t2) for c2, t2 in zip(t.data, t.args))]
        if None in kinds:
            return None
        return POSDEF if POSDEF in kinds else SEMIDEFINITE
    if c <= 0:
        return None
    if t.op == "delta" or (t.op == "var" and "posdef" in t.data[1]):
        return POSDEF
    if t.op == "inv":
        return POSDEF if definiteness(t.args[0]) == POSDEF else None
    if t.op != "einsum":
        return None
    factors = list(zip(t.args, t.data[0]))
    out = t.data[1]
    scalars = [f for f, idx in factors if not idx]
    if not all(is_positive(s) for s in scalars):
        return None
    rest = [(f, idx) for f, idx in factors if idx]
    eyes = [(f, idx) for f, idx in rest if f.op == "delta" and idx == out]
    if len(eyes) == 1 and len(rest) == 1:
        return POSDEF                                 # s*eye, s > 0
    mats = [(f, idx) for f, idx in rest if f.ndim == 2]
    weights = [(f, idx) for f, idx in rest if f.ndim == 1]
    if len(mats) == 2 and mats[0][0] is mats[1][0] and len(rest) == 2 + len(weights):
        (b, (k1, i)), (_, (k2, j)) = mats
        if k1 == k2 and (i, j) in (out, out[::-1]) and all(
                idx == (k1,) and is_positive(w) for w, idx in weights):
            return SEMIDEFINITE                       # B'*diag(q)*B
    return None
