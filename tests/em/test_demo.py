"""``matdiff em demo``: the derivation it prints holds numerically, the fit it reports is the
estimator's, and the plot is written (when matplotlib is there)."""

import re

import numpy as np
import pytest

from matdiff.cli import main
from matdiff.em import GaussianMixture
from matdiff.em.demo import sample_mixture


def test_demo_derives_fits_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    assert main(["em", "demo", "--out", str(out), "--seed", "3"]) == 0
    text, err = capsys.readouterr()
    assert "dQ/dm = inv(S)*(Y - vector(1)*m')'*r" in text
    assert "= 0 at  m = Y'*r/sum(r)" in text
    assert "= 0 at  S = (Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m')/sum(r)" in text
    gradients = [float(g) for g in re.findall(r"max \|gradient\| .* = (\S+)", text)]
    assert len(gradients) == 3 and max(gradients) < 1e-12
    # the reported fit is the estimator's on the same data
    model = GaussianMixture(3, max_iter=100, tol=1e-8, random_state=3, init_params="random")
    model.fit(sample_mixture(np.random.default_rng(3)))
    assert f"lower bound {model.lower_bound_:.6f}" in text
    assert "EM [" in err and "lower bound" in err          # the progress bar
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_demo_without_a_plot(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["em", "demo", "--no-plot"]) == 0
    assert "plot saved" not in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_em_needs_a_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["em"])
    assert stop.value.code == 2
