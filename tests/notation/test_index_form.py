"""r.index, the third view of a linear map: every index form, merged (kron, vec) axes
included, evaluated entry by entry from its text equals the derivative tensor."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import matdiff

SIZES = {"m": 2, "n": 3, "p": 2, "q": 3}
FACTOR = re.compile(r"(delta)\(([^()]*(?:\([^()]*\))?[^()]*)\)|(.+)\[([^\[\]]*)\]$")


def split_top(text: str, binary: str) -> list[tuple[str, str]]:
    """(the operator before it, piece) for each piece between the ``binary`` operators at
    bracket depth 0 ("+-" only between spaces, as the printer writes sums)."""
    out, depth, start, op = [], 0, 0, "+"
    for k, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        spaced = binary == "*" or (text[k - 1:k] == " " and text[k + 1:k + 2] == " ")
        if depth == 0 and ch in binary and spaced and k > 0:
            out.append((op, text[start:k].strip()))
            op, start = ch, k + 1
    out.append((op, text[start:].strip()))
    return out


def labels_of(index_text: str) -> list[tuple[str, ...]]:
    """'i,(a,b),k' -> [('i',), ('a', 'b'), ('k',)]."""
    out = []
    for part in re.findall(r"\([^()]*\)|[^,()]+", index_text):
        out.append(tuple(part.strip("()").split(",")))
    return out


def evaluate_index_form(text: str, declare: str, values: dict, shape: tuple) -> np.ndarray:
    head, body = text.split(" = ", 1)
    out = head[2:-1].split(",")
    terms = []
    for sign, term in split_top(body, "+-"):
        coef, factors = (-1.0 if sign == "-" else 1.0), []
        if term.startswith("-"):
            coef, term = -coef, term[1:]
        for _, piece in split_top(term, "*"):
            if re.fullmatch(r"[0-9/]+", piece):
                num, _, den = piece.partition("/")
                coef *= float(num) / float(den or 1)
                continue
            match = FACTOR.fullmatch(piece)
            assert match, piece
            if match.group(1):
                first, rest = match.group(2).split(",", 1)
                factors.append((None, [(first,), tuple(rest.strip("()").split(","))]))
            else:
                base = match.group(3)
                array = np.asarray(matdiff.evaluate(base, declare, **values), dtype=float)
                factors.append((array, labels_of(match.group(4))))
        terms.append((coef, factors))
    sizes: dict[str, int] = dict(zip(out, shape))
    for _, factors in terms:
        for array, labels in factors:
            if array is not None:
                for axis, group in zip(array.shape, labels):
                    if len(group) == 1:
                        sizes.setdefault(group[0], axis)
    for _ in range(6):  # a delta's labels take their sizes from its partners
        for _, factors in terms:
            for array, labels in factors:
                if array is not None:
                    continue
                (a,), parts = labels
                if len(parts) == 1 and (a in sizes) != (parts[0] in sizes):
                    sizes.setdefault(a, sizes.get(parts[0]))
                    sizes.setdefault(parts[0], sizes[a])
                elif len(parts) > 1 and a not in sizes and all(n in sizes for n in parts):
                    sizes[a] = int(np.prod([sizes[n] for n in parts]))
    result = None
    for coef, factors in terms:
        names = sorted({n for _, labels in factors for g in labels for n in g} | set(out))
        names += [n for n in out if n not in names]
        total = np.zeros(shape)
        for combo in itertools.product(*(range(sizes[n]) for n in names)):
            at = dict(zip(names, combo))
            value = coef
            for array, labels in factors:
                position = []
                for group in labels:
                    flat, stride = 0, 1
                    for n in group:  # column-major: the first part runs fastest
                        flat += at[n] * stride
                        stride *= sizes[n]
                    position.append(flat)
                if array is None:
                    value *= float(position[0] == position[1])
                else:
                    value *= array[tuple(position)]
                if value == 0:
                    break
            total[tuple(at[n] for n in out)] += value
        result = total if result is None else result + total
    return result


CASES = [
    ("inv(X)", "X", "X: matrix(n,n)"),
    ("X*X", "X", "X: matrix(n,n)"),
    ("A*X*B", "X", "A: matrix(m,n); X: matrix(n,p); B: matrix(p,q)"),
    ("kron(A, B)", "A", "A: matrix(m,n); B: matrix(p,q)"),
    ("vec(X)", "X", "X: matrix(m,n)"),
    ("vec(A*X)", "X", "A: matrix(m,n); X: matrix(n,p)"),
    ("vec(X)'*W*vec(X)", "X", "X: matrix(m,n); W: matrix(m*n,m*n)"),
]


@pytest.mark.parametrize("expr, wrt, declare", CASES)
def test_index_forms_evaluate_to_the_tensor(expr, wrt, declare):
    r = matdiff.derive(expr, wrt=wrt, declare=declare)
    rng = np.random.default_rng(8)

    def size(d):
        return int(np.prod([SIZES[f] for f in str(d).split("*")]))

    values = {name: rng.standard_normal([size(d) for d in decl.shape])
              for name, decl in r.variables.items()}
    expected = r.numpy()(**values)
    actual = evaluate_index_form(r.index, declare, values, np.shape(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
