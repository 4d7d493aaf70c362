"""solve on random scalar expressions (test_properties' generator): a closed form passes its
check, anything else is the clear "no closed form found" (or bad input), never a crash."""

import random
import sys
from pathlib import Path

import pytest

import matdiff

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_properties as tp  # noqa: E402 - the generator lives beside the tests of derive


@pytest.mark.parametrize("block", range(4))
def test_random_expressions(block):
    for seed in range(block * 15, block * 15 + 15):
        case = tp.draw_case(tp.Chooser(random.Random(seed)), [()], True)
        if case is None:
            continue
        try:
            sol = matdiff.solve(case.expression, wrt=case.wrt, declare=case.declare)
        except matdiff.MatdiffError:
            continue
        if sol.closed:
            assert sol.check(seed % 5) < 1e-9, (case, sol.text)
        else:
            assert sol.reason.startswith("no closed form found: "), case
