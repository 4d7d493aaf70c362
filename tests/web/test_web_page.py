"""The page end to end: ``matdiff serve`` in a subprocess, Debian's chromium driven by
Playwright (headless, never a downloaded browser). What the page shows is checked against
NumPy: the rendered LaTeX is read back by matdiff and evaluated, the code block is run.

Screenshots of the main states go to $MATDIFF_SCREENSHOTS (``docs/`` regenerates the README's
pictures), else to a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import matdiff

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: "
                               "pip install 'matdiff[webtest]'")
pytest.importorskip("starlette", reason="the web extra is not installed: pip install "
                                        "'matdiff[web]'")
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): the page "
                "tests drive it", allow_module_level=True)
expect = sync_api.expect

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SRC = str(Path(matdiff.__file__).resolve().parents[1])
WAIT_MS = 120_000  # a loaded CI machine: one refresh is a few requests to the workers
GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_LATEX = (r"\frac{1}{\sqrt{(2\pi)^k |\Sigma|}}\exp\left( -\frac{1}{2}(\textbf{x}-"
                  r"\boldsymbol \mu)^T\Sigma^{-1}(\textbf{x}-\boldsymbol \mu)\right)")


@pytest.fixture(scope="module")
def server():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    # a generous time limit: a loaded CI machine must not turn the check into "not done"
    process = subprocess.Popen([sys.executable, "-m", "matdiff", "serve", "--port", "0",
                                "--workers", "2", "--seconds", "60"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    found = re.search(r"http://\S+/", line)
    if not found:
        process.kill()
        raise AssertionError(f"matdiff serve printed {line!r}: {process.stderr.read()!r}")
    yield found.group(0)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def katex(server) -> bool:
    """Whether this installation has KaTeX (fetched with npm when matdiff is built)."""
    with urllib.request.urlopen(server + "api/status", timeout=WAIT_MS / 1000) as response:
        return json.loads(response.read())["katex"]


def need(katex: bool) -> None:
    if not katex:
        pytest.skip("KaTeX is not in this installation (npm was missing when it was built): "
                    "the checks of the rendered math skip")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("MATDIFF_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def context(browser, server):
    """A fresh profile that can reach nothing but the server (the page must need nothing
    else); ``context.outside`` lists what it tried to reach."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.outside = []

    def only_local(route):
        if route.request.url.startswith(server) or route.request.url.startswith("blob:"):
            route.continue_()
        else:
            ctx.outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    yield ctx
    ctx.close()


def settled(page) -> None:
    """Wait until the page has shown everything its last change asked for."""
    expect(page.locator("body")).to_have_attribute("data-pending", "false", timeout=WAIT_MS)


def open_page(context, server, query: str = ""):
    page = context.new_page()
    page.goto(server + query)
    settled(page)
    return page


def shown_latex(page, selector: str) -> str:
    """The LaTeX KaTeX typeset in ``selector`` (its MathML annotation)."""
    return page.locator(f"{selector} annotation[encoding='application/x-tex']").first \
        .text_content()


def api(server: str, endpoint: str, body: dict) -> dict:
    request = urllib.request.Request(server + f"api/{endpoint}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WAIT_MS / 1000) as response:
        return json.loads(response.read())


def gaussian_values(rng, k=3, names=("S", "x", "m")):
    a = rng.standard_normal((k, k))
    s, x, m = names
    return {s: a @ a.T + k * np.eye(k), x: rng.standard_normal(k), m: rng.standard_normal(k),
            "k": float(k)}


def gaussian_gradient_S(S, x, m, k):
    d = x - m
    inv = np.linalg.inv(S)
    f = (2 * np.pi) ** (-k / 2) / np.sqrt(np.linalg.det(S)) * np.exp(-0.5 * d @ inv @ d)
    return f, 0.5 * f * (inv @ np.outer(d, d) @ inv - inv)


def assert_shows_gaussian_gradient(page, server, expr, wrt, names):
    """The derivative on the page, read back from its LaTeX, is the oracle's df/dS."""
    assert page.locator("#derivative .katex").count() == 1
    latex = shown_latex(page, "#derivative")
    label, body = latex.split(" = ", 1)
    assert label == rf"\frac{{\partial f}}{{\partial {wrt}}}"
    declared = api(server, "derive", {"expr": expr, "wrt": page.locator("#wrt").input_value(),
                                      "declare": page.locator("#declared").text_content(),
                                      "check": False})["declared"]
    v = gaussian_values(np.random.default_rng(7), names=names)
    f, oracle = gaussian_gradient_S(v[names[0]], v[names[1]], v[names[2]], v["k"])
    got = matdiff.evaluate(body, declared + "; f: scalar", syntax="latex", f=f, **v)
    np.testing.assert_allclose(got, oracle, rtol=1e-10)


def test_the_gaussian_typed_as_text(context, server, shots, katex):
    need(katex)
    page = open_page(context, server, "?expr=x")
    page.locator("#expr").fill(GAUSSIAN)
    settled(page)
    # k is a vector by its letter: the error says so, and the table fixes it
    expect(page.locator("#expr-error u.at")).to_have_text("^")
    assert page.locator("#variables tbody tr").count() == 4
    page.get_by_label("type of k").select_option("scalar")
    settled(page)
    expect(page.locator("#expr-error")).to_be_hidden()
    page.locator("#wrt").select_option("S")
    settled(page)
    for prop in ("symmetric", "posdef"):
        page.get_by_label(f"S {prop}").check()
        settled(page)
    expect(page.locator("#check .badge")).to_have_text("check passed")
    assert_shows_gaussian_gradient(page, server, GAUSSIAN, "S", ("S", "x", "m"))
    assert "sym(G)" in page.locator("#facts").text_content()
    assert page.locator("#differential .katex").count() == 1
    assert "S%3A+symmetric+posdef+matrix" in page.url and "k%3A+scalar" in page.url
    page.screenshot(path=shots / "light.png", scale="css")
    assert context.outside == []


def test_the_gaussian_pasted_as_latex(context, server, katex):
    need(katex)
    page = open_page(context, server, "?expr=x")
    page.locator("#expr").fill(GAUSSIAN_LATEX)
    settled(page)
    expect(page.locator("#syntax")).to_have_text("(read as LaTeX)")
    names = [n.text_content() for n in page.locator("#variables tbody tr td:first-child")
             .all()]
    assert set(names) == {"k", "Sigma", "x", "mu"}
    page.locator("#wrt").select_option("Sigma")
    settled(page)
    for prop in ("symmetric", "posdef"):
        page.get_by_label(f"Sigma {prop}").check()
        settled(page)
    expect(page.locator("#check .badge")).to_have_text("check passed")
    assert_shows_gaussian_gradient(page, server, GAUSSIAN_LATEX, r"\Sigma",
                                   ("Sigma", "x", "mu"))


def test_the_code_block_runs_in_python(context, server, tmp_path):
    pytest.importorskip("scipy", reason="the generated NumPy code uses SciPy where it is "
                                        "installed")
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = open_page(context, server)  # the Gaussian, by S, as the page starts
    code = page.locator("#code").text_content()
    module = tmp_path / "gaussian.py"
    module.write_text(code)
    run = (f"import json, runpy, numpy as np; g = runpy.run_path({str(module)!r}); "
           "rng = np.random.default_rng(7); a = rng.standard_normal((3, 3)); "
           "S = a @ a.T + 3*np.eye(3); x, m = rng.standard_normal(3), rng.standard_normal(3); "
           "print(json.dumps(g['df_dS'](k=3.0, S=S, x=x, m=m).tolist())); "
           "print(g['check_gradient']())")
    out = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split("\n")
    v = gaussian_values(np.random.default_rng(7))
    np.testing.assert_allclose(json.loads(out[0]), gaussian_gradient_S(**v)[1], rtol=1e-10)
    assert float(out[1]) < 1e-6
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename == "df_dS_numpy.py"
    assert Path(download.value.path()).read_text() == code
    page.locator("#copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == code
    page.locator("[data-backend=torch]").click()
    settled(page)
    assert "torch" in page.locator("#code").text_content()
    assert "backend=torch" in page.url


def test_an_error_is_underlined_where_it_is(context, server, shots):
    page = open_page(context, server, "?expr=x")
    page.locator("#expr").fill("x'*A*+x")
    settled(page)
    error = page.locator("#expr-error")
    expect(error).to_be_visible()
    expect(error.locator("u.at")).to_have_text("+")
    assert page.locator("#expr-pointer").text_content() == "x'*A*+x"
    assert "column 6" in page.locator("#expr-message").text_content()
    assert "Traceback" not in page.content()
    page.screenshot(path=shots / "error.png", scale="css")
    # a declaration error is shown under the table
    page.locator("#expr").fill("x'*A*x")
    settled(page)
    page.get_by_label("dimensions of A").fill("n,n,n")
    page.get_by_label("dimensions of A").dispatch_event("change")
    settled(page)
    expect(page.locator("#declare-error")).to_be_visible()


def test_the_url_reproduces_the_result(context, server):
    page = open_page(context, server, "?expr=x")
    page.locator("#expr").fill("log(det(X)) + tr(A*X)")
    settled(page)
    page.locator("#order").select_option("2")
    settled(page)
    page.get_by_label("X symmetric").check()
    settled(page)
    page.locator("#symmetric").select_option("full")
    settled(page)
    before = page.locator("#derivative").text_content()
    url = page.url
    again = context.new_page()
    again.goto(url)
    settled(again)
    assert again.locator("#expr").input_value() == "log(det(X)) + tr(A*X)"
    assert again.locator("#order").input_value() == "2"
    assert again.locator("#symmetric").input_value() == "full"
    assert again.get_by_label("X symmetric").is_checked()
    assert again.locator("#derivative").text_content() == before


def test_the_page_works_with_the_network_blocked(context, server, katex):
    page = open_page(context, server)
    expect(page.locator("#check .badge")).to_have_text("check passed")
    if katex:
        assert page.locator(".katex").count() >= 3
        assert page.locator(".fallback").count() == 0
    assert context.outside == []


def test_without_katex_math_is_unicode_text(context, server):
    context.route("**/static/katex/**", lambda route: route.abort())
    page = open_page(context, server)
    assert page.locator(".katex").count() == 0
    expect(page.locator("#derivative .fallback")).to_contain_text("∂f/∂S = ½ f(S⁻¹")


def test_dark_mode_follows_the_system_and_the_toggle(browser, server, shots):
    ctx = browser.new_context(color_scheme="dark", viewport={"width": 1200, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(server)
        settled(page)
        background = "getComputedStyle(document.body).backgroundColor"
        assert page.evaluate(background) == "rgb(21, 23, 26)"
        page.screenshot(path=shots / "dark.png", scale="css")
        page.locator("#theme").click()
        assert page.evaluate(background) == "rgb(251, 251, 250)"
        page.reload()
        settled(page)
        assert page.evaluate(background) == "rgb(251, 251, 250)"  # the choice is kept
    finally:
        ctx.close()


def test_a_phone_gets_one_column(browser, server, shots):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              device_scale_factor=2, has_touch=True)
    try:
        page = ctx.new_page()
        page.goto(server)
        settled(page)
        entry, results = (page.locator(s).bounding_box() for s in ("#input", "#results"))
        assert results["y"] >= entry["y"] + entry["height"]
        assert entry["width"] <= 390 and results["width"] <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=shots / "phone.png", scale="css")
    finally:
        ctx.close()


def entrywise_of_xAx(x, a, h=1e-5) -> dict:
    """An entrywise table of x'*A*x by x in the shape of Entrywise.to_dict() (the explain
    branch's), with the finite differences computed here."""
    f = lambda v: v @ a @ v  # noqa: E731
    entries = []
    for i in range(len(x)):
        e = np.eye(len(x))[i] * h
        fd = (f(x + e) - f(x - e)) / (2 * h)
        exact = ((a + a.T) @ x)[i]
        entries.append({"index": [i + 1], "label": f"[df/dx]_{i + 1}", "finite_difference": fd,
                        "formula": exact, "difference": abs(fd - exact)})
    return {"label": {"text": "[df/dx]_i = df/dx_i", "latex": r"\left[\frac{\partial f}"
                      r"{\partial x}\right]_{i} = \frac{\partial f}{\partial x_{i}}"},
            "index": {"text": "sum_j (A[i,j] + A[j,i])*x[j]",
                      "latex": r"\sum_{j} \left(A_{ij} + A_{ji}\right) x_{j}"},
            "where": {"text": "", "latex": ""}, "size": len(x), "seed": 0,
            "point": {"x": x.tolist(), "A": a.tolist()},
            "tables": [{"convention": None, "title": "", "perturbation": "x_i moved alone",
                        "max_difference": max(e["difference"] for e in entries),
                        "resolution": 1e-9, "step": h, "entries": entries}],
            "note": None, "omitted": None}


def test_the_entrywise_table_in_the_explain_format(context, server, katex):
    rng = np.random.default_rng(4)
    x, a = rng.standard_normal(2), rng.standard_normal((2, 2))
    table = entrywise_of_xAx(x, a)

    served = []

    def with_table(route):  # the page is shown a table of known numbers
        try:
            body = route.fetch().json()
        except sync_api.Error:  # a superseded request still computing its table when the
            return              # test closed the page (seen under load): nothing to answer
        if "text" in body:
            served.append(body.get("entrywise"))
            body["entrywise"] = table
        route.fulfill(json=body)

    context.route("**/api/derive", with_table)
    page = open_page(context, server, "?expr=x'*A*x&wrt=x")
    page.locator("#entrywise-section summary").click()
    rows = page.locator("#entrywise table.entrywise tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT_MS)  # waited for: the click starts a request
    settled(page)
    for i, entry in enumerate(table["tables"][0]["entries"]):
        cells = rows.nth(i).locator("td").all_text_contents()
        assert cells[0] == entry["label"]
        fd = entry["finite_difference"]
        assert abs(float(cells[1]) - fd) <= 1e-6 * max(1.0, abs(fd))
        assert abs(float(cells[2]) - ((a + a.T) @ x)[i]) <= 1e-6 * max(1.0, abs(fd))
    assert page.locator("#entrywise .katex" if katex else "#entrywise .fallback").count() == 1
    real = next((t for t in served if t is not None), None)
    if real is not None:  # the server's own table has the fields the page reads
        assert set(real) == set(table)
        assert set(real["tables"][0]) == set(table["tables"][0])
        assert set(real["tables"][0]["entries"][0]) == set(table["tables"][0]["entries"][0])


STEPS_OF_XAX = {  # Steps.to_dict() of the steps branch, for x'*A*x by x
    "steps": [
        {"rule": "d(x'*A*x)", "lhs": "df", "text": "d(x'*A*x)", "latex":
         r"\mathrm{d}\left(x^{\top} A x\right)", "unicode": "d(xᵀA x)",
         "result": None, "result_lhs": None},
        {"rule": "product rule", "lhs": "df", "text": "dx'*A*x + x'*A*dx",
         "latex": r"\mathrm{d}x^{\top} A x + x^{\top} A \mathrm{d}x",
         "unicode": "dxᵀA x + xᵀA dx", "result": None, "result_lhs": None},
        {"rule": "transposes", "lhs": "df", "text": "((A + A')*x)'*dx",
         "latex": r"\left(\left(A + A^{\top}\right) x\right)^{\top} \mathrm{d}x",
         "unicode": "((A + Aᵀ) x)ᵀdx", "result": "(A + A')*x", "result_lhs": "df/dx"},
    ],
    "where": [],
}


def test_the_steps_in_the_steps_format(context, server, katex):
    def with_steps(route):
        body = route.fetch().json()
        if "text" in body:  # a known derivation, whatever this version's own steps are
            body["steps"] = STEPS_OF_XAX
        route.fulfill(json=body)

    context.route("**/api/derive", with_steps)
    page = open_page(context, server, "?expr=x'*A*x&wrt=x")
    steps = page.locator("#steps details.step")
    assert steps.count() == 3
    assert steps.nth(1).locator("summary").text_content() == "2. product rule"
    expect(steps.nth(2)).to_contain_text("df/dx = (A + A')*x")
    if katex:
        shown = shown_latex(page, "#steps details.step:nth-child(2)")
        assert shown == r"\mathrm{d}f = " + STEPS_OF_XAX["steps"][1]["latex"]
    # the steps shown are right: each differential's value in a direction dx
    rng = np.random.default_rng(6)
    x, a, dx = rng.standard_normal(3), rng.standard_normal((3, 3)), rng.standard_normal(3)
    for step in STEPS_OF_XAX["steps"][1:]:
        got = matdiff.evaluate(step["text"], "x, dx: vector(n); A: matrix(n,n)", x=x, A=a,
                               dx=dx)
        np.testing.assert_allclose(got, x @ (a + a.T) @ dx, rtol=1e-12)


def test_steps_and_entrywise_sections(context, server):
    page = open_page(context, server, "?expr=x'*A*x&wrt=x")
    result = matdiff.derive("x'*A*x", "x")
    assert page.locator("#steps details.step").count() == len(result.steps)
    for i, step in enumerate(result.steps):
        assert page.locator("#steps summary").nth(i).text_content() == f"{i + 1}. {step.rule}"
    expect(page.locator("#entrywise")).to_contain_text("not asked for")  # while folded
    page.locator("#entrywise-section summary").click()
    # the table arrives with the request the click starts (waited for, not raced)
    expect(page.locator("#entrywise table.entrywise tbody tr").first).to_be_visible(
        timeout=WAIT_MS)
