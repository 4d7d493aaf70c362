"""``matdiff serve`` as a user runs it: the URL it prints answers, Ctrl-C stops it cleanly, a
missing extra or a taken port is a one-line error (exit 2), a non-loopback host is warned."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import matdiff
from matdiff.cli import main

pytest.importorskip("starlette", reason="the web extra is not installed: pip install "
                                        "'matdiff[web]'")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install "
                                      "'matdiff[web]'")

SRC = str(Path(matdiff.__file__).resolve().parents[1])
START_S = 120  # a loaded CI machine starting Python processes


def start(*args: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    server = subprocess.Popen([sys.executable, "-m", "matdiff", "serve", "--port", "0",
                               "--workers", "1", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    line = server.stdout.readline()
    found = re.search(r"http://\S+/", line)
    if not found:
        server.kill()
        raise AssertionError(f"no URL printed: {line!r} {server.stderr.read()!r}")
    return server, found.group(0)


def stop(server: subprocess.Popen) -> tuple[int, str]:
    server.send_signal(signal.SIGINT)
    try:
        code = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        raise
    return code, server.stderr.read()


def get(url: str, host: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=START_S) as response:
        return json.loads(response.read())


def test_serve_prints_a_url_that_answers_and_stops_on_ctrl_c():
    server, url = start()
    try:
        assert url.startswith("http://127.0.0.1:")
        status = get(url + "api/status")
        assert status["version"] == matdiff.__version__ and len(status["workers"]) == 1
        body = json.dumps({"expr": "x'*A*x", "wrt": "x"}).encode()
        request = urllib.request.Request(url + "api/derive", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=START_S) as response:
            assert json.loads(response.read())["text"] == "(A + A')*x"
    finally:
        code, err = stop(server)
    assert code == 0 and "Traceback" not in err and "warning" not in err


def test_a_host_beyond_loopback_is_warned_about():
    server, url = start("--host", "0.0.0.0")
    try:
        port = url.rsplit(":", 1)[1].strip("/")
        assert get(f"http://127.0.0.1:{port}/api/status")["workers"]
    finally:
        code, err = stop(server)
    assert "warning: listening on 0.0.0.0" in err and "127.0.0.1" in err


def test_a_taken_port_is_a_one_line_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("matdiff: error: cannot listen on 127.0.0.1 port") and \
        "--port" in err and err.count("\n") == 1


def test_bad_arguments_are_one_line_errors(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be from 0 to 65535" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be from 1" in capsys.readouterr().err
    assert main(["serve", "--seconds", "0"]) == 2
    assert "--seconds must be from 0.1" in capsys.readouterr().err


def test_without_the_extra_serve_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    from matdiff.web import serve
    real = importlib.util.find_spec
    monkeypatch.setattr(serve.importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'matdiff[web]'" in err and "uvicorn" in err and "Traceback" not in err
