"""The JSON API through Starlette's TestClient: the answers are matdiff's (checked against
NumPy oracles, and against the CLI's --format json), bad requests are clean 4xx, and the
server's bounds hold."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install "
                                        "'matdiff[web]'")
try:
    from starlette.testclient import TestClient
except (ImportError, RuntimeError):  # it raises RuntimeError without an HTTP client
    pytest.skip("Starlette's TestClient needs httpx2 (pip install 'matdiff[webtest]')",
                allow_module_level=True)

import matdiff  # noqa: E402
from matdiff.cli import main  # noqa: E402
from matdiff.web.app import create_app  # noqa: E402
from matdiff.web.schema import Settings  # noqa: E402

GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"
HOST = "testserver"  # TestClient's Host header


@pytest.fixture(scope="module")
def client():
    # generous: a loaded CI machine must not turn a correct answer into a time-out
    settings = Settings(seconds=60.0, grace=10.0)
    with TestClient(create_app(workers=2, settings=settings, allowed_hosts=(HOST,))) as c:
        yield c


@pytest.fixture(scope="module")
def tight():
    """A server with a one-second budget, for the inputs that would take long."""
    settings = Settings(seconds=1.0, grace=1.0)
    with TestClient(create_app(workers=1, settings=settings, allowed_hosts=(HOST,))) as c:
        yield c


def post(client, endpoint: str, body: dict, **kwargs):
    return client.post(f"/api/{endpoint}", json=body, **kwargs)


def gaussian_point(rng, k=3):
    a = rng.standard_normal((k, k))
    return {"k": float(k), "S": a @ a.T + k * np.eye(k), "x": rng.standard_normal(k),
            "m": rng.standard_normal(k)}


def gaussian(v):
    d = v["x"] - v["m"]
    k = len(d)
    return (2 * np.pi) ** (-k / 2) * np.linalg.det(v["S"]) ** -0.5 * \
        np.exp(-0.5 * d @ np.linalg.solve(v["S"], d))


# --- answers ---------------------------------------------------------------------------------

def test_derive_has_the_cli_json_fields_with_the_same_values(client, capsys):
    assert main(["derive", GAUSSIAN, "--wrt", "S", "--declare", DECLARE, "--check",
                 "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    r = post(client, "derive", {"expr": GAUSSIAN, "wrt": "S", "declare": DECLARE})
    assert r.status_code == 200
    api = r.json()
    assert set(cli) <= set(api)
    assert {key: api[key] for key in cli} == cli
    assert api["check_verdict"] == "ok"


def test_derive_gaussian_printed_forms_evaluate_to_the_oracle(client):
    rng = np.random.default_rng(1)
    v = gaussian_point(rng)
    inv = np.linalg.inv(v["S"])
    d = v["x"] - v["m"]
    f = gaussian(v)
    oracles = {"S": 0.5 * f * (inv @ np.outer(d, d) @ inv - inv), "m": f * inv @ d,
               "x": -f * inv @ d}
    for wrt, oracle in oracles.items():
        body = post(client, "derive", {"expr": GAUSSIAN, "wrt": wrt, "declare": DECLARE}).json()
        assert body["check_verdict"] == "ok"
        for form in (body["text"], body["text_with_f"]):
            got = matdiff.evaluate(form, body["declared"], **v, f=f)
            np.testing.assert_allclose(got, oracle, rtol=1e-10)
        # the differential, in a random symmetric direction
        dv = rng.standard_normal(v[wrt].shape)
        dv = (dv + dv.T) / 2 if wrt == "S" else dv
        got = matdiff.evaluate(body["differential"], body["declared"], **v, **{f"d{wrt}": dv})
        np.testing.assert_allclose(got, np.sum(oracle * dv), rtol=1e-10)


def test_derive_vec_form_and_layouts(client):
    rng = np.random.default_rng(2)
    a, x, b = (rng.standard_normal(s) for s in ((2, 3), (3, 4), (4, 5)))
    body = post(client, "derive", {"expr": "A*X*B", "wrt": "X"}).json()
    assert body["shown_as_differential"] and body["index"].startswith("D[")
    j = matdiff.evaluate(body["vec"], body["declared"], A=a, X=x, B=b)
    np.testing.assert_allclose(j, np.kron(b.T, a), rtol=1e-12)
    numerator = post(client, "derive", {"expr": "x'*A*x", "wrt": "x",
                                        "layout": "numerator"}).json()
    assert numerator["layout"] == "numerator" and "numerator" in numerator["layout_note"]
    xv, av = rng.standard_normal(3), rng.standard_normal((3, 3))
    row = matdiff.evaluate(numerator["text"], numerator["declared"], x=xv, A=av)
    np.testing.assert_allclose(np.ravel(row), (av + av.T) @ xv, rtol=1e-12)


def test_hessian_and_labels(client):
    body = post(client, "derive", {"expr": "x'*A*x", "wrt": "x", "order": 2}).json()
    rng = np.random.default_rng(3)
    av = rng.standard_normal((3, 3))
    np.testing.assert_allclose(matdiff.evaluate(body["text"], body["declared"], A=av),
                               av + av.T, rtol=1e-12)
    assert body["label_latex"] == r"\frac{\partial^{2} f}{\partial x^{2}}"
    assert body["label_unicode"] == "∂²f/∂x²"
    inverse = post(client, "derive", {"expr": "inv(X)", "wrt": "X"}).json()
    assert inverse["label_unicode"] == "d(X⁻¹)"


def test_variables_from_text_and_latex(client):
    body = post(client, "variables", {"expr": "x'*A*x + c"}).json()
    assert body["syntax"] == "text" and body["wrt"] == "x"
    assert [(v["name"], v["kind"], v["dims"]) for v in body["variables"]] == [
        ("x", "vector", ["n"]), ("A", "matrix", ["n", "n"]), ("c", "scalar", [])]
    latex = (r"\frac{1}{\sqrt{(2\pi)^k |\Sigma|}}\exp\left( -\frac{1}{2}(\textbf{x}-"
             r"\boldsymbol \mu)^T\Sigma^{-1}(\textbf{x}-\boldsymbol \mu)\right)")
    body = post(client, "variables", {"expr": latex, "declare": "Sigma: symmetric posdef "
                                      "matrix(k,k)"}).json()
    assert body["syntax"] == "latex"
    kinds = {v["name"]: (v["kind"], v["dims"], v["props"]) for v in body["variables"]}
    assert kinds["Sigma"][0] == "matrix" and kinds["Sigma"][1] == ["k", "k"]
    assert {"symmetric", "posdef"} <= set(kinds["Sigma"][2])
    assert kinds["x"][:2] == ("vector", ["k"]) and kinds["mu"][:2] == ("vector", ["k"])


def test_source_runs_and_agrees_with_the_oracle(client, tmp_path):
    pytest.importorskip("scipy", reason="the generated NumPy code uses SciPy's Cholesky "
                                        "solves where SciPy is installed")
    body = post(client, "source", {"expr": GAUSSIAN, "wrt": "m", "declare": DECLARE}).json()
    assert body["backend"] == "numpy" and body["filename"].endswith(".py")
    module = tmp_path / body["filename"]
    module.write_text(body["source"])
    run = (f"import json, runpy, numpy as np; g = runpy.run_path({str(module)!r}); "
           "rng = np.random.default_rng(5); a = rng.standard_normal((3, 3)); "
           "S = a @ a.T + 3*np.eye(3); x, m = rng.standard_normal(3), rng.standard_normal(3); "
           "print(json.dumps(g['df_dm'](k=3.0, S=S, x=x, m=m).tolist())); "
           "print(g['check_gradient']())")
    out = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split("\n")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 3))
    v = {"k": 3.0, "S": a @ a.T + 3 * np.eye(3), "x": rng.standard_normal(3),
         "m": rng.standard_normal(3)}
    expected = gaussian(v) * np.linalg.solve(v["S"], v["x"] - v["m"])
    np.testing.assert_allclose(json.loads(out[0]), expected, rtol=1e-10)
    assert float(out[1]) < 1e-6


def test_steps_and_entrywise_fields(client):
    body = post(client, "derive", {"expr": "x'*A*x", "wrt": "x", "steps": True,
                                   "entrywise": {"size": 2, "seed": 1}}).json()
    result = matdiff.derive("x'*A*x", "x")
    if hasattr(result, "steps"):
        assert body["steps"] == result.steps.to_dict()
    else:
        assert body["steps"] is None and "Result.steps" in body["steps_reason"]
    if hasattr(result, "entrywise"):
        assert body["entrywise"] == result.entrywise(2, 1).to_dict()
    else:
        assert body["entrywise"] is None and "Result.entrywise" in body["entrywise_reason"]
    plain = post(client, "derive", {"expr": "x'*A*x", "wrt": "x"}).json()
    assert plain["steps"] is None and plain["entrywise"] is None


# --- errors where they are -------------------------------------------------------------------

def test_errors_point_at_the_column_of_their_field(client):
    r = post(client, "derive", {"expr": "x'*A*+x", "wrt": "x"})
    assert r.status_code == 422
    e = r.json()["error"]
    assert e["kind"] == "input" and e["field"] == "expr" and e["column"] == 6
    assert e["message"].startswith("at column 6:")
    r = post(client, "derive", {"expr": "x'*A*x", "wrt": "x", "declare": "A: matrx(n,n)"})
    e = r.json()["error"]
    assert r.status_code == 422 and e["field"] == "declare" and e["column"] == 4
    r = post(client, "derive", {"expr": "x + A", "wrt": "x"})
    e = r.json()["error"]
    assert e["field"] == "expr" and e["column"] == 3 and "cannot add" in e["message"]
    r = post(client, "derive", {"expr": "x'*x", "wrt": "q"})
    assert r.status_code == 422 and "'q'" in r.json()["error"]["message"]


def test_pathological_input_is_refused_in_time_and_the_server_keeps_serving(tight):
    # eight levels: four (order 4) now finish in about 1 s, inside the 2 s budget
    slow = {"expr": "sum(sin(A*tanh(B*sin(C*tanh(D*sin(E*tanh(F*sin(G*tanh(H*x)))))))))",
            "wrt": "x", "order": 4}
    started = time.monotonic()
    r = post(tight, "derive", slow)
    assert time.monotonic() - started < 2.0 + 5.0  # budget + grace, and slack for a busy CI
    assert r.status_code == 422
    e = r.json()["error"]
    assert e["kind"] in ("limit", "timeout") and "matdiff.limits" not in e["message"]
    big = {"expr": "x'*" + "*".join(f"A{i}" for i in range(1200)) + "*x", "wrt": "x"}
    assert post(tight, "derive", big).status_code in (413, 422)
    ok = post(tight, "derive", {"expr": "x'*A*x", "wrt": "x", "check": False})
    assert ok.status_code == 200 and ok.json()["text"] == "(A + A')*x"


# --- 50 malformed requests: each a clean 4xx with a one-line message -------------------------

OK = {"expr": "x'*A*x", "wrt": "x"}
RAW = {  # body text -> what the message must mention
    "not json": "not JSON", "{": "not JSON", "": "empty", "   ": "empty", "null": "object",
    "[]": "object", '"x"': "object", "42": "object", "true": "object",
    '{"expr": NaN, "wrt": "x"}': "NaN", '{"expr": "x", "wrt": Infinity}': "Infinity",
    '{"expr": "x", "expr": "y", "wrt": "x"}': "twice", "[" * 60_000: "nested",
    '{"expr": "x", "wrt": "x"': "not JSON", "{'expr': 'x'}": "not JSON",
}
FIELDS = [  # changes to a valid request -> what the message must mention
    ({"expr": None}, "expr"), ({"expr": 5}, "expr"), ({"expr": ["x"]}, "expr"),
    ({"expr": {"a": 1}}, "expr"), ({"expr": ""}, "empty"), ({"expr": "   "}, "empty"),
    ({"wrt": 5}, "wrt"), ({"wrt": []}, "wrt"), ({"wrt": ["x"] * 5}, "wrt"),
    ({"wrt": ["x", 1]}, "wrt"), ({"wrt": "x" * 200}, "wrt"), ({"wrt": None}, "wrt"),
    ({"order": "2"}, "order"), ({"order": 0}, "order"), ({"order": 99}, "order"),
    ({"order": True}, "order"), ({"order": 1.5}, "order"), ({"symmetric": "bogus"}, "symmetric"),
    ({"symmetric": 1}, "symmetric"), ({"layout": "row"}, "layout"),
    ({"syntax": "python"}, "syntax"), ({"check": "yes"}, "check"), ({"steps": 1}, "steps"),
    ({"entrywise": "big"}, "entrywise"), ({"entrywise": {"size": 100}}, "entrywise.size"),
    ({"entrywise": {"colour": 1}}, "colour"), ({"declare": 5}, "declare"),
    ({"declare": ["x: vector"]}, "declare"), ({"direction": 5}, "direction"),
    ({"foo": 1}, "unknown field"), ({"__proto__": {}}, "unknown field"),
    ({"limits": {"seconds": 1000}}, "unknown field"),
]


def assert_clean(r, mentions: str, status: tuple[int, ...] = (400,)):
    assert r.status_code in status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    e = r.json()["error"]
    assert isinstance(e["message"], str) and e["message"] and "\n" not in e["message"]
    assert "Traceback" not in r.text and len(e["message"]) <= 400
    assert mentions.lower() in e["message"].lower(), e["message"]


def test_fifty_malformed_requests_are_clean_4xx(client):
    count = 0
    for text, mentions in RAW.items():
        r = client.post("/api/derive", content=text.encode(),
                        headers={"content-type": "application/json"})
        assert_clean(r, mentions)
        count += 1
    r = client.post("/api/derive", content=b"\xff\xfe{}",
                    headers={"content-type": "application/json"})
    assert_clean(r, "UTF-8")
    count += 1
    for change, mentions in FIELDS:
        assert_clean(post(client, "derive", {**OK, **change}), mentions)
        count += 1
    others = [
        (post(client, "derive", {"wrt": "x"}), "missing", (400,)),
        (post(client, "derive", {"expr": "x"}), "missing", (400,)),
        (post(client, "variables", {**OK}), "unknown field", (400,)),
        (post(client, "source", {**OK, "backend": "tensorflow"}), "backend", (400,)),
        (post(client, "derive", {**OK, "expr": "x" * 5000}), "characters", (413,)),
        (post(client, "derive", {**OK, "declare": "x: vector; " * 500}), "characters", (413,)),
        (client.post("/api/derive", content=b"{" + b" " * 70_000 + b"}",
                     headers={"content-type": "application/json"}), "bytes", (413,)),
        (client.post("/api/derive", content=json.dumps(OK).encode(),
                     headers={"content-type": "text/plain"}), "application/json", (415,)),
        (client.post("/api/derive", content=json.dumps(OK).encode()), "application/json",
         (415,)),
        (client.post("/api/derive", data={"expr": "x"}), "application/json", (415,)),
        (client.get("/api/derive"), "GET", (405,)),
        (client.put("/api/derive", json=OK), "PUT", (405,)),
        (post(client, "nothing", OK), "nothing at", (404,)),
        (client.get("/api/../../etc/passwd"), "nothing at", (404,)),
        (post(client, "derive", OK, headers={"origin": "http://evil.example"}), "other sites",
         (403,)),
        (client.get("/", headers={"host": "evil.example"}), "host", (400,)),
        (post(client, "derive", {**OK, "wrt": "q"}), "differentiate", (422,)),
        (post(client, "derive", {**OK, "expr": "x'*A*"}), "column", (422,)),
        (post(client, "derive", {**OK, "declare": "x: vectr(n)"}), "unknown word", (422,)),
    ]
    for r, mentions, status in others:
        assert_clean(r, mentions, status)
        count += 1
    assert count >= 50
    # and the server is fine after all of them
    assert post(client, "derive", OK).json()["text"] == "(A + A')*x"


# --- security and limits ---------------------------------------------------------------------

def test_no_cors_and_a_strict_content_policy(client):
    r = post(client, "derive", OK, headers={"origin": "http://testserver"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = client.options("/api/derive", headers={"origin": "http://evil.example",
                                                 "access-control-request-method": "POST"})
    assert pre.status_code == 405 and "access-control-allow-origin" not in pre.headers
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-eval" not in policy and page.headers["x-content-type-options"] == "nosniff"


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("static/app.js", "static/style.css"):
        r = client.get("/" + asset)
        assert r.status_code == 200 and "http" not in r.text.replace("http.", "")
    status = client.get("/api/status").json()
    if status["katex"]:
        assert client.get("/static/katex/katex.min.js").status_code == 200
        assert 'katex.min.js' in page.text


def test_without_katex_the_page_is_served_without_it(tmp_path):
    app = create_app(workers=1, allowed_hosts=(HOST,), katex_dir=tmp_path / "absent")
    with TestClient(app) as c:
        assert "katex" not in c.get("/").text
        assert c.get("/static/katex/katex.min.js").status_code == 404
        assert c.get("/api/status").json()["katex"] is False


def test_workers_are_recycled_and_memory_stays_bounded():
    settings = Settings(seconds=60.0, tasks_per_worker=4)
    with TestClient(create_app(workers=1, settings=settings, allowed_hosts=(HOST,))) as c:
        interned = []
        for n in range(14):
            expr = f"x'*A{n}*x + {n + 1}*sin(a{n}) + logdet(S{n})"
            r = post(c, "derive", {"expr": expr, "wrt": "x"})
            assert r.status_code == 200 and r.json()["check_verdict"] == "ok"
            interned.append(c.get("/api/status").json()["workers"])
        status = c.get("/api/status").json()
        assert status["retired"] >= 3 and status["killed"] == status["died"] == 0
    # the interned IR does not grow with the requests a worker has answered
    counts = [w[0]["interned_nodes"] for w in interned if w and w[0]["tasks"] == 3]
    assert counts and max(counts) < 2 * min(counts) + 500


def test_the_check_gives_way_to_the_derivative_when_time_runs_short():
    from matdiff import budget
    from matdiff.web.service import RESERVE_S, _within_reserve

    def slow():
        time.sleep(1.1)  # past the 1.0 s the reserve leaves it
        budget.check_time("checking")
        return "done"

    with budget.request({"seconds": RESERVE_S + 1.0}):
        value, why = _within_reserve(slow)
        assert value is None and why.startswith("not done: gave up checking")
        assert budget.remaining() > 0  # the rest of the request still has its reserve
    with budget.request({"seconds": 30.0}):
        assert _within_reserve(lambda: "done") == ("done", None)


def test_answers_asked_again_come_from_a_bounded_cache(client):
    from matdiff.web.app import Answers, _repeatable
    request = {"expr": "tr(X'*B*X)", "wrt": "X", "layout": "numerator"}
    first = post(client, "derive", request)
    hits = client.get("/api/status").json()["cache"]["hits"]
    again = post(client, "derive", request)
    assert again.json() == first.json() and again.status_code == 200
    assert client.get("/api/status").json()["cache"]["hits"] == hits + 1
    answers = Answers(entries=3, size=1000)
    for n in range(5):
        answers.put(str(n), 200, b"x" * 100)
    assert list(answers.kept) == ["2", "3", "4"] and answers.bytes == 3 * 101
    answers.put("big", 200, b"x" * 600)  # over a quarter of the bound: not kept
    assert "big" not in answers.kept
    assert answers.get("2") is not None and list(answers.kept)[-1] == "2"
    for n in range(9):
        answers.put(f"k{n}", 200, b"y" * 240)
    assert answers.bytes <= 1000 and len(answers.kept) <= 3
    assert not _repeatable(422, {"error": {"kind": "timeout"}})
    assert not _repeatable(422, {"error": {"kind": "limit", "limit": "seconds"}})
    assert _repeatable(422, {"error": {"kind": "limit", "limit": "parts"}})
    assert not _repeatable(200, {"check_error": "not done: gave up"})
    assert not _repeatable(503, {"error": {"kind": "busy"}})


def test_a_streamed_body_is_cut_off_at_the_limit(client):
    def chunks():
        yield b'{"expr": "'
        for _ in range(20):
            yield b"x" * 8192  # no Content-Length: the server counts as it reads
        yield b'", "wrt": "x"}'

    r = client.post("/api/derive", content=chunks(), headers={"content-type":
                                                              "application/json"})
    assert_clean(r, "bytes", (413,))


def test_the_server_never_runs_or_unpickles_what_it_receives():
    import ast
    import pathlib

    import matdiff.web
    unsafe_modules = {"pickle", "marshal", "shelve", "multiprocessing", "dill"}
    for module in pathlib.Path(matdiff.web.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile"), module.name
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & unsafe_modules
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in unsafe_modules, module.name


def test_derive_serves_the_real_steps_and_entrywise_tables(client):
    """Not a fixture: the server's own steps and tables for the Gaussian, each step's text
    holding at a random point, and the tables' differences small."""
    body = {"expr": GAUSSIAN, "wrt": "S", "declare": DECLARE, "steps": True,
            "entrywise": {"size": 2, "seed": 0}}
    answer = post(client, "derive", body)
    assert answer.status_code == 200, answer.text
    api = answer.json()
    steps = api["steps"]["steps"]
    assert 6 <= len(steps) <= 12 and api["steps_reason"] is None
    assert steps[-1]["result"] == api["text"]
    tables = api["entrywise"]["tables"]
    assert {t["convention"] for t in tables} >= {"sym"}
    assert all(t["max_difference"] <= 1e-6 for t in tables)
    # a derivative without steps (mixed) still answers, and says why
    mixed = post(client, "derive", {"expr": "x'*S*x", "wrt": ["x", "S"], "steps": True}).json()
    assert mixed["steps"] is None and mixed["steps_reason"] and mixed["text"]
