"""A seeded generator of hostile inputs: the classes of issue 7 plus random bytes, unicode,
huge numbers, deep nesting, long sums and products, absurd declarations, arguments of the wrong
Python type and bad values. Shared by tests/test_hostile.py and benchmarks/hostile.py."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

ATOMS = ["x", "y", "A", "B", "S", "a", "b", "eye", "pi", "1", "2.5", "x'", "A'"]
UNARY = ["inv", "det", "logdet", "tr", "sum", "exp", "log", "sin", "sqrt", "abs", "diag",
         "norm2", "relu", "tanh", "sign"]
BINARY = ["+", "-", "*", "/", ".*", "./", "^", ".^"]
WEIRD = ["\x00", "\x1b[31m", "\x07", "\x7f", "١٢", "𝟐", "×", "−", "\u200b", "é", "∑", "😀",
         "'", "((", "))", ",", ";", "#", "\\", "\n"]
DECLARATIONS = [None, "S: symmetric posdef matrix(k,k); x: vector(k)", "x: vector(3)",
                "A: matrix(2,3)", "x: vector(0)", "x: vector(1000000000000)", "x: vector(pi)",
                "S: diagonal matrix", "a: positive scalar", "x: vector(n); A: matrix(n)",
                "x:", ":", "x: vector(inv)", "x, x: vector", "A: invertible matrix(m,m)",
                {"x": {"shape": (2**70,)}}, {"x": {"props": None}}, {"x": 5}, {5: "vector"}]
BAD_VALUES = ["abc", b"xy", [[1, 2], [3]], {"a": 1}, (i for i in range(3)), 10**400,
              float("nan"), float("inf"), None, 1 + 2j, [1e308, 1e308], np.zeros((2, 3)),
              True]


@dataclass
class Case:
    expr: object
    wrt: object = "x"
    declare: object = None
    order: object = 1
    values: dict = field(default_factory=dict)

    def argv(self) -> list[str]:
        argv = ["derive", str(self.expr), "--wrt", str(self.wrt)]
        if isinstance(self.declare, str):
            argv += ["--declare", self.declare]
        if self.order in (1, 2):
            argv += ["--order", str(self.order)]
        return argv


def _expression(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(ATOMS)
    roll = rng.random()
    if roll < 0.4:
        return f"{rng.choice(UNARY)}({_expression(rng, depth - 1)})"
    if roll < 0.9:
        return f"({_expression(rng, depth - 1)}){rng.choice(BINARY)}({_expression(rng, depth - 1)})"
    return "-" + _expression(rng, depth - 1)


def _long(rng: random.Random) -> str:
    n = rng.choice([50, 300, 1000, 3000])
    kind = rng.randrange(6)
    if kind == 0:
        return " + ".join(f"c{i}*x'*A*x" for i in range(n // 10))
    if kind == 1:
        return "tr(" + "*".join(["A"] * n) + ")"
    if kind == 2:
        return "x'*" + "*".join(f"A{i}" for i in range(n // 3)) + "*x"
    if kind == 3:
        return rng.choice(UNARY[5:9]) + "(" * n + "x" + ")" * n
    if kind == 4:
        return f"A^{rng.choice([2, 30, 3000, 10**5, 10**9])}"
    return "*".join(f"(a + b{i})" for i in range(n // 12))


def _number(rng: random.Random) -> str:
    return rng.choice(["9" * rng.choice([10, 500, 5000]), "1e400", "1e-400", "1e999999999",
                       "((2^64)^64)^64^64", "(1e200)^2", "0.000000000000000001", "2^-1074",
                       "1e308*1e308"])


def generate(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        roll = rng.random()
        wrt = rng.choice(["x", "A", "a", "S", "y", "q", "pi"])
        declare = rng.choice(DECLARATIONS) if rng.random() < 0.3 else None
        order = rng.choice([1, 1, 1, 2, 0, 3, True, 2.0, "1", None]) if rng.random() < 0.2 \
            else 1
        if roll < 0.35:
            expr = _expression(rng, rng.randrange(1, 5))
        elif roll < 0.45:
            expr = _long(rng)
        elif roll < 0.55:
            expr = f"{_number(rng)}*{rng.choice(['a', 'x', 'A'])}"
        elif roll < 0.65:
            text = _expression(rng, 2)
            cut = rng.randrange(len(text) + 1)
            expr = text[:cut] + rng.choice(WEIRD) + text[cut:]
        elif roll < 0.72:
            expr = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))).decode(
                "utf-8", "replace")
        elif roll < 0.78:
            expr = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 20)))
        elif roll < 0.84:
            expr = rng.choice([None, 5, b"x'*x", ["x"], 3.5, {"x": 1}])
        elif roll < 0.9:
            wrt = rng.choice([["x"], None, 5, ",".join(f"v{i}" for i in range(2000)),
                              "x" * 5000, "\x1b"])
            expr = "x'*A*x"
        else:
            expr = rng.choice(["x'*A*x", "tr(S*S*S)", "a*x'*x", "sum(exp(A*x))"])
            wrt = {"x'*A*x": "x", "tr(S*S*S)": "S", "a*x'*x": "x", "sum(exp(A*x))": "x"}[expr]
            declare = "S: symmetric matrix" if "S" in expr else None
            name = rng.choice(["x", "A", "S", "a", "typo", "zz"])
            value = rng.choice(BAD_VALUES + [np.array([[1.0, 2.0], [3.0, 4.0]])])
            return_values = {name: value}
            cases.append(Case(expr, wrt, declare, 1, return_values))
            continue
        cases.append(Case(expr, wrt, declare, order))
    return cases
