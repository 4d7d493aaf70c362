"""docs/tutorial.md runs as written: every ```sh command (``matdiff ...`` as ``python3 -m
matdiff ...``) exits 0, the ```python blocks run in one namespace, and where a ```text block
follows, the output is the one printed there.

Outputs match when their words match exactly and their numbers agree to 1e-6 relative; numbers
below 1e-8 on both sides are rounding noise (finite-difference residues, whose digits and signs
vary with the platform's floating point) and match each other. Whitespace runs count as one
space, so a sign that flips in an aligned column does not matter.

``python3 tests/test_tutorial.py --update`` rewrites the ```text blocks from a run (then read
the diff: it is what a reader will see).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")
NOISE = 1e-8
RELATIVE = 1e-6


def blocks(text: str) -> list[tuple[str, str, re.Match]]:
    return [(m.group(1), m.group(2), m) for m in BLOCK.finditer(text)]


def run_sh(script: str) -> str:
    out = []
    for line in script.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        argv = shlex.split(line)
        assert argv[0] == "matdiff", f"the tutorial runs matdiff only: {line}"
        done = subprocess.run([sys.executable, "-m", "matdiff", *argv[1:]], capture_output=True,
                              text=True, env=os.environ, timeout=300)
        assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stderr}"
        out.append(done.stdout)
    return "".join(out)


def run_python(source: str, namespace: dict) -> str:
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        exec(compile(source, str(TUTORIAL), "exec"), namespace)  # noqa: S102 - the tutorial
    return captured.getvalue()


def outputs(text: str):
    """(block index, output) of every code block, run in order."""
    namespace: dict = {}
    for n, (lang, body, _) in enumerate(blocks(text)):
        if lang == "sh":
            yield n, run_sh(body)
        elif lang == "python":
            yield n, run_python(body, namespace)


def same(expected: str, actual: str) -> bool:
    e, a = NUMBER.split(expected.strip()), NUMBER.split(actual.strip())
    if len(e) != len(a):
        return False
    for k, (x, y) in enumerate(zip(e, a)):
        if k % 2 == 0:
            if " ".join(x.split()) != " ".join(y.split()):
                return False
            continue
        u, v = float(x), float(y)
        if not (abs(u) < NOISE and abs(v) < NOISE or
                abs(u - v) <= RELATIVE * max(abs(u), abs(v))):
            return False
    return True


def test_same_is_strict_about_words_and_numbers():
    assert same("df/dS_12  -1.0e-03  2e-13", "df/dS_12   -1.0000001e-03  -5e-14")
    assert not same("df/dS_12 -1.0e-03", "df/dS_21 -1.0e-03")
    assert not same("x = 0.5", "x = 0.6") and not same("a b", "a  b c")


def test_the_tutorial_runs_as_written():
    text = TUTORIAL.read_text(encoding="utf-8")
    found = blocks(text)
    assert sum(lang in ("sh", "python") for lang, _, _ in found) >= 10
    for n, output in outputs(text):
        following = found[n + 1] if n + 1 < len(found) else None
        if following is not None and following[0] == "text":
            assert same(following[1], output), (
                f"block {n}:\n{found[n][1]}\nprinted in the tutorial:\n{following[1]}\n"
                f"but it prints:\n{output}")


def test_the_readme_links_the_tutorial():
    readme = (TUTORIAL.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "docs/tutorial.md" in readme


def update() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    found = blocks(text)
    replacements = []
    for n, output in outputs(text):
        if n + 1 < len(found) and found[n + 1][0] == "text":
            m = found[n + 1][2]
            replacements.append((m.start(2), m.end(2), output.rstrip("\n") + "\n"))
    for start, end, new in reversed(replacements):
        text = text[:start] + new + text[end:]
    TUTORIAL.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update()
    else:
        sys.exit(pytest.main([__file__]))
