"""The build step pyproject.toml cannot express: KaTeX for the web page, from its npm package.

Everything else about the package is in pyproject.toml. When ``static/katex/`` is absent and
npm is available, build_py fetches the pinned KaTeX (src/matdiff/web/assets.py) so the wheel
carries it; without npm the build goes on and the page shows math as Unicode text.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = Path(__file__).resolve().parent / "src" / "matdiff" / "web" / "assets.py"


class BuildWithKatex(build_py):
    def run(self):
        spec = importlib.util.spec_from_file_location("matdiff_web_assets", ASSETS)
        assets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(assets)
        if not assets.katex_present():
            problem = assets.fetch_katex()
            if problem:
                print(f"warning: KaTeX not bundled ({problem}): matdiff serve will show math "
                      "as Unicode text")
        super().run()


setup(cmdclass={"build_py": BuildWithKatex})
