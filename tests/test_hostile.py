"""Hostile input: every generated input ends in a result or a MatdiffError, within the time
budget, and the CLI under a memory cap never shows a traceback or an internal error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import generate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matdiff

DEFAULT = matdiff.Limits()   # the suite lifts the time limit (conftest); these run under it
SLACK_S = 2.0                # past the budget: the gap between two deadline checks
MEMORY_MIB = 1024


def outcome(case) -> str:
    """"result", "error" or "mismatch"; anything else raises (the test fails)."""
    try:
        r = matdiff.derive(case.expr, case.wrt, declare=case.declare, order=case.order,
                           limits=DEFAULT)
        _ = r.text
        if case.values:
            r.numpy()(**case.values)
            return "result"
        verdict = r.check(trials=1)
        return "mismatch" if verdict.verdict == "mismatch" else "result"
    except matdiff.MatdiffError as err:
        message = str(err)
        assert "\n" not in message and len(message) <= 400
        assert all(c.isprintable() for c in message), message
        return "error"


@pytest.mark.parametrize("seed", range(6))
def test_generated_inputs_through_the_api(seed):
    for case in generate(seed, 50):
        started = time.monotonic()
        assert outcome(case) in ("result", "error"), case
        assert time.monotonic() - started < DEFAULT.seconds + SLACK_S, case


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=40), st.sampled_from(["x", "A", "a"]))
def test_any_text_is_a_result_or_a_clean_error(text, wrt):
    try:
        r = matdiff.derive(text, wrt, limits=DEFAULT)
        _ = r.text
    except matdiff.MatdiffError as err:
        assert "\n" not in str(err) and len(str(err)) <= 400


@pytest.mark.parametrize("value", ["abc", [[1, 2], [3]], {"a": 1}, 10**400, float("nan"),
                                   float("inf"), None, 1 + 2j, np.zeros((2, 3))])
def test_bad_values_are_clean_errors(value):
    f = matdiff.derive("x'*A*x", "x").numpy()
    with pytest.raises(matdiff.MatdiffError):
        f(x=value, A=np.eye(2))


def test_values_must_keep_the_declared_properties():
    r = matdiff.derive("tr(S*S*S)", "S", declare="S: symmetric matrix")
    with pytest.raises(matdiff.MatdiffError, match="declared symmetric"):
        r.numpy()(S=np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(matdiff.MatdiffError, match="not a variable"):
        r.numpy()(S=np.eye(2), Ss=np.eye(2))           # a typo
    unused = matdiff.derive("a*x'*x", "x", declare="x: vector(n); z: vector(n)")
    assert np.allclose(unused.numpy()(a=2.0, x=np.ones(2), z=np.ones(2)), 4 * np.ones(2))


def test_limits_are_named_and_can_be_raised():
    with pytest.raises(matdiff.LimitError) as caught:
        matdiff.derive("x'*x", "x", limits={"text_length": 3})
    assert caught.value.limit == "text_length" and "matdiff.limits(" in str(caught.value)
    with matdiff.limits(depth=5):
        with pytest.raises(matdiff.LimitError, match="depth"):
            matdiff.derive("sum(" + "sin(" * 6 + "x" + ")" * 7, "x")
    assert matdiff.limits().depth == matdiff.Limits().depth  # undone after the block
    with pytest.raises(matdiff.MatdiffError, match="unknown limit"):
        matdiff.limits(speed=3)


def test_check_is_not_fooled():
    """A zero derivative of a large expression and a fast-varying function are no mismatch;
    a wrong derivative is."""
    assert matdiff.derive("0*exp(x'*x) + 1e8*sum(exp(y))", "x").check().verdict == "ok"
    assert matdiff.derive("sin(1000*a)", "a").check().verdict == "ok"
    assert matdiff.derive("sin(100000*a)", "a").check().verdict != "mismatch"
    from matdiff.numeric.check import verify
    from matdiff.numeric.codegen import compile_numpy
    r = matdiff.derive("x'*A*x", "x")
    f = compile_numpy(r.function, r._shapes)
    g = r.numpy()
    wrong = verify(f, lambda **v: 1.001 * g(**v), r._shapes, {}, "x", "full")
    assert wrong.verdict == "mismatch"


def test_long_products_and_powers_are_fast_enough_to_finish():
    r = matdiff.derive("tr(" + "*".join(["A"] * 300) + ")", "A", limits=DEFAULT)
    assert r.text == "300*(A^299)'"
    r = matdiff.derive("x'*A^100000*x", "x", limits=DEFAULT)
    assert r.text == "(A^100000 + (A^100000)')*x"


def test_the_intern_table_lets_go():
    import gc

    from matdiff.core.ir import Expr
    for k in range(200):
        _ = matdiff.derive(f"x'*A{k}*x + sin(c{k})", "x").text
    gc.collect()
    before = len(Expr._interned)
    for k in range(200, 400):
        _ = matdiff.derive(f"x'*A{k}*x + sin(c{k})", "x").text
    gc.collect()
    assert len(Expr._interned) < before + 200  # not 200 derivations' worth of nodes more


CHILD = """
import json, resource, sys
limit = int(sys.argv[2]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from matdiff.cli import main
sys.exit(main(json.loads(sys.argv[1])))
"""


@pytest.mark.parametrize("seed", range(2))
def test_generated_inputs_through_the_cli(seed):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    for case in generate(100 + seed, 8):
        argv = case.argv()
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv), str(MEMORY_MIB)],
                              capture_output=True, timeout=DEFAULT.seconds + 10, env=env)
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode in (0, 2), (argv, done.returncode, err[-500:])
        assert "Traceback" not in err and "internal error" not in err, (argv, err[-500:])
