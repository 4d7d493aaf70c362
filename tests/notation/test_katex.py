r"""Every LaTeX form matdiff prints is a formula KaTeX renders (the page shows it with KaTeX):
no double superscripts (A^{-1}^{2}), no unbalanced braces or \left...\right, no unknown
commands. The forms are those of the worked examples and of seeded random expressions of the
property generator (orders 1 and 2), rendered by the KaTeX that `matdiff serve` ships, under
Node. Skips where Node or the KaTeX build step is missing (python3 -m matdiff.web.assets
fetches it)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest
from cases import CASES
from test_cases import derived
from test_properties import ALL_KINDS, SCALAR, Chooser, draw_case

import matdiff
from matdiff.web.assets import KATEX_DIR, katex_present

RANDOM_CASES = 150

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not katex_present(),
                                reason="needs Node and KaTeX (python3 -m matdiff.web.assets)")

RENDER = """
const katex = require(process.argv[1]);
const forms = JSON.parse(require("fs").readFileSync(0, "utf8"));
const failed = [];
for (const tex of forms) {
  try { katex.renderToString(tex, {throwOnError: true, displayMode: true, strict: "error"}); }
  catch (e) { failed.push([tex, String(e.message).slice(0, 200)]); }
}
process.stdout.write(JSON.stringify(failed));
"""


def printed_latex(r) -> list[str]:
    forms = [r.latex, r.differential.latex, r.function_in("latex")]
    return [f for f in forms if f]


def latex_forms() -> list[str]:
    forms = []
    for case in CASES:
        forms += printed_latex(derived(case))
    for order in (1, 2):
        for seed in range(RANDOM_CASES):
            case = draw_case(Chooser(random.Random(7000 * order + seed)),
                             [SCALAR] if order == 2 else ALL_KINDS, allow_symmetric_wrt=True)
            if case is None:
                continue
            try:
                r = matdiff.derive(case.expression, case.wrt, declare=case.declare,
                                   order=order)
                forms += printed_latex(r)
            except matdiff.MatdiffError:
                continue
    return forms


def test_katex_renders_every_printed_form():
    forms = latex_forms()
    assert len(forms) > 500
    done = subprocess.run(["node", "-e", RENDER, str(KATEX_DIR / "katex.min.js")],
                          input=json.dumps(forms), capture_output=True, text=True, timeout=120,
                          check=True)
    failed = json.loads(done.stdout)
    assert not failed, "\n".join(f"{tex}\n  -> {why}" for tex, why in failed[:5])


def test_katex_rejects_what_it_should():
    # the check itself: a double superscript and an unknown command fail
    bad = [r"A^{-1}^{2}", r"\operatorname{tr}\left(A\right", r"\notacommand x"]
    done = subprocess.run(["node", "-e", RENDER, str(KATEX_DIR / "katex.min.js")],
                          input=json.dumps(bad), capture_output=True, text=True, timeout=60,
                          check=True)
    assert len(json.loads(done.stdout)) == len(bad)
