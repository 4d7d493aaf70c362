"""KaTeX, the page's math renderer, taken from its npm package at build time.

Its files are not kept in the repository (they are another project's code): the build
(setup.py's build_py, or ``python -m matdiff.web.assets`` in a checkout) runs ``npm pack`` for
the pinned version and copies the minified script, the stylesheet, the fonts and the licence
into ``static/katex/``, which the wheel carries as package data. Without npm the install still
succeeds and the page shows math as Unicode text. Nothing is fetched when the server runs.

Standard library only: setup.py loads this file by path, before matdiff is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

KATEX_VERSION = "0.19.1"
KATEX_DIR = Path(__file__).resolve().parent / "static" / "katex"
WANTED = {"package/dist/katex.min.js": "katex.min.js",
          "package/dist/katex.min.css": "katex.min.css",
          "package/LICENSE": "LICENSE"}
FONTS = "package/dist/fonts/"
NPM_SECONDS = 300


def katex_present(folder: Path = KATEX_DIR) -> bool:
    return all((folder / name).is_file() for name in WANTED.values()) and \
        any((folder / "fonts").glob("*.woff2"))


def fetch_katex(folder: Path = KATEX_DIR, version: str = KATEX_VERSION) -> str | None:
    """Put KaTeX ``version`` into ``folder`` from its npm package; None when done, else why
    it could not be (no npm, no registry), in one line."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([npm, "pack", f"katex@{version}", "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=NPM_SECONDS)
        except (subprocess.SubprocessError, OSError) as err:
            return f"npm pack katex@{version} failed: {type(err).__name__}"
        tarballs = list(Path(tmp).glob("katex-*.tgz"))
        if len(tarballs) != 1:
            return "npm pack left no katex tarball"
        staging = Path(tmp) / "katex"
        _unpack(tarballs[0], staging)
        if not katex_present(staging):
            return f"the katex@{version} package lacks the files the page needs"
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, folder)
    return None


def _unpack(tarball: Path, into: Path) -> None:
    """Only the wanted regular files, each written by name (no paths from the archive)."""
    (into / "fonts").mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            if member.name in WANTED:
                target = into / WANTED[member.name]
            elif member.name.startswith(FONTS) and "/" not in member.name[len(FONTS):]:
                target = into / "fonts" / Path(member.name).name
            else:
                continue
            source = archive.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())


def main() -> int:
    if katex_present() and "--force" not in sys.argv[1:]:
        print(f"KaTeX is in {KATEX_DIR}")
        return 0
    problem = fetch_katex()
    if problem:
        print(f"KaTeX not fetched: {problem}; the page will show math as Unicode text",
              file=sys.stderr)
        return 1
    print(f"KaTeX {KATEX_VERSION} copied into {KATEX_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
