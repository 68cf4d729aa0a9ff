"""Coverage by toys (mcsurrogate.stats.coverage): a deliberately biased template undercovers and covers with the
surrogate modifier; the perfect-generator and memorising-learner floors; limits; strict JSON; the figure."""

from __future__ import annotations

import json
import math

import hist
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.stats import (
    COVERAGE_LEVELS,
    CoverageLimit,
    CoverageToy,
    SurrogateUncertainty,
    coverage_study,
    plot_coverage,
)
from mcsurrogate.stats.coverage import toy_row_from_dict

EDGES = np.linspace(100.0, 180.0, 11)  # m_γγ-like fit variable, GeV
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
TILT = np.linspace(-1.0, 1.0, 10)


def _hist(values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(EDGES), storage=hist.storage.Weight())
    h.view().value = values
    h.view().variance = variances
    return h


def _setup(bias: float, n_mc: float = 1e5, n_gen: float = 1e6):
    """A falling MC background of ``n_mc`` unweighted events, a 4 GeV wide signal at 125 GeV, and a generated
    template ``n_gen`` events tilted by ``bias`` (a deliberate, known mismodelling: −bias at 100 GeV, +bias at 180)."""
    parent = np.exp(-CENTRES / 40.0)
    parent /= parent.sum()
    signal = np.exp(-0.5 * ((CENTRES - 125.0) / 4.0) ** 2)
    signal /= signal.sum()
    generated = parent * (1 + bias * TILT)
    return (
        _hist(signal * 1e4, signal),
        _hist(parent * n_mc, parent * n_mc),
        _hist(generated * n_gen, generated * n_gen),
    )


def test_a_biased_template_undercovers_and_the_modifier_restores_68_percent():
    """The issue's acceptance test: a known 5 % tilt of the template; the modifier carries exactly that shape (its −1σ
    shift turns the template into the truth). Exact templates (no staterror) isolate the modifier's effect."""
    sig, mc, gen = _setup(0.05)
    modifier = SurrogateUncertainty("histosys", components=np.array([0.05 * TILT / (1 + 0.05 * TILT)]))
    result = coverage_study(
        sig,
        mc,
        gen,
        surrogate_uncertainty=modifier,
        luminosities=[30.0],
        n_toys=1000,
        floors=False,
        limits=False,
        staterror=False,
        redraw_generated=False,
        seed=1,
        progress=False,
    )
    without, with_modifier = result.point(30.0, "generated"), result.point(30.0, "generated+modifier")
    assert without.n_failed == with_modifier.n_failed == 0
    assert without.coverage_68 < 0.2 and without.coverage_95 < 0.5  # the bias: 3.4 σ at 3 × 10⁶ events
    assert without.pull_mean > 2.5
    assert abs(with_modifier.coverage_68 - COVERAGE_LEVELS["68"]) <= 0.03
    assert abs(with_modifier.coverage_95 - 0.95) <= 0.02
    assert abs(with_modifier.pull_mean) < 0.1 and with_modifier.pull_width == pytest.approx(1.0, abs=0.06)
    assert result.within("generated+modifier") and not result.within("generated")


@pytest.fixture(scope="module")
def study():
    """Floors and limits on a small set-up: templates of 10⁶ events redrawn per toy, a learner of 3000 events."""
    sig, mc, gen = _setup(0.05, n_gen=1e8)  # the flow's shape, 100× the template
    modifier = SurrogateUncertainty("histosys", components=np.array([0.05 * TILT / (1 + 0.05 * TILT)]))
    return coverage_study(
        sig,
        mc,
        gen,
        surrogate_uncertainty=modifier,
        luminosities=[1.0, 30.0],
        n_toys=60,
        n_generated=1_000_000,
        n_training=3_000,
        n_limit_toys=4,
        seed=3,
        processes=1,
        progress=False,
    )


def test_floors_limits_and_percentiles(study):
    assert study.templates == ["generated", "generated+modifier", "perfect", "learner"]
    assert study.luminosities == [1.0, 30.0]
    for lumi in study.luminosities:
        perfect = study.point(lumi, "perfect")
        assert perfect.z_percentile == pytest.approx(50.0, abs=1.0)  # its own median sits in the middle
        assert perfect.coverage_68 > 0.5 and perfect.coverage_95 > 0.85
        assert perfect.ul_shift_16 <= perfect.ul_shift <= perfect.ul_shift_84
        assert 0 <= perfect.ul_shift_percentile <= 100
    learner, perfect = study.point(30.0, "learner"), study.point(30.0, "perfect")
    assert learner.coverage_68 < perfect.coverage_68 - 0.2  # 3000 training events' fluctuations, fixed per toy
    assert learner.z_percentile > 84
    flow, fixed = study.point(30.0, "generated"), study.point(30.0, "generated+modifier")
    assert flow.coverage_68 < 0.45 and fixed.coverage_68 > 0.55  # the tilt shows at 3 × 10⁶ events
    assert flow.z_percentile > 75 and fixed.z_percentile < 60
    assert fixed.ul_median > flow.ul_median  # the modifier widens the expected limit
    assert math.isnan(flow.ul_shift_16)  # one number per luminosity, no band
    assert fixed.ul_shift_percentile > flow.ul_shift_percentile


def test_result_is_strict_json_with_a_table_and_a_figure(study):
    text = json.dumps(study.to_dict(toys=True), allow_nan=False)
    back = json.loads(text)
    assert len(back["points"]) == 8 and back["settings"]["n_training"] == 3_000
    assert {r["template"] for r in back["toys"]} >= {"generated", "perfect", "learner", "mc"}
    # typed rows: a toy fit or an expected limit each, read back from toys.json as the same rows
    assert {type(r) for r in study.toys} == {CoverageToy, CoverageLimit}
    rows = [toy_row_from_dict(r) for r in back["toys"]]
    assert [type(r) for r in rows] == [type(r) for r in study.toys]
    assert [r.to_dict() for r in rows] == back["toys"]
    reference = next(r for r in back["toys"] if r["template"] == "mc")
    assert list(reference) == ["luminosity", "template", "ul_median", "status"]  # no toy, no shift: the reference
    fit = next(r for r in back["toys"] if "t_true" in r)
    figures = ["mu_hat", "mu_sigma", "t_true", "pull", "z_signed"]
    assert list(fit) == ["toy", "luminosity", "template", *figures, "status", "reason"]
    assert back["settings"]["surrogate_uncertainty"][0]["modifiers"] == ["surrogate_shape0"]
    table = study.table()
    assert table.count("\n") == 2 + 8 - 1 and "generated+modifier" in table
    fig = plot_coverage(study)
    assert len(fig.axes) == 3
    with pytest.raises(InputError, match="no point for template 'nope'"):
        study.point(1.0, "nope")


def test_bad_input_is_named():
    sig, mc, gen = _setup(0.0)
    with pytest.raises(InputError, match="n_toys must be an integer ≥ 1"):
        coverage_study(sig, mc, gen, n_toys=0, progress=False)
    with pytest.raises(InputError, match="mu_true"):
        coverage_study(sig, mc, gen, mu_true=math.nan, progress=False)
    with pytest.raises(InputError, match="luminosities"):
        coverage_study(sig, mc, gen, luminosities=[0.0], progress=False)
    other = hist.Hist(hist.axis.Regular(5, 100.0, 180.0), storage=hist.storage.Weight())
    with pytest.raises(InputError, match="binning"):
        coverage_study(sig, mc, other, progress=False)
    negative = _hist(np.r_[-1.0, np.ones(9)], np.ones(10))
    with pytest.raises(InputError, match="negative bin"):
        coverage_study(sig, mc, negative, progress=False)
    with pytest.raises(InputError, match="n_training"):
        coverage_study(sig, mc, gen, n_training=0, progress=False)


def test_with_data_and_warm_start_give_the_fresh_fits():
    """The toys' shortcuts: a model's Inference reused for other data, and a new template's first fit started from
    the previous toy's Hessian, find what a fresh Inference finds."""
    from mcsurrogate.stats import Inference, asimov_counts, build_workspace, model_and_data

    sig, mc, gen = _setup(0.02)
    expected = asimov_counts(sig, mc, 0.5)
    rng = np.random.default_rng(0)
    first, second = (rng.poisson(expected).astype(float) for _ in range(2))
    model, data = model_and_data(build_workspace(sig, gen, first))
    inf = Inference(model, data)
    inf.mu_hat()
    fresh = Inference(*model_and_data(build_workspace(sig, gen, second)))
    reused = inf.with_data(second)
    assert reused.mu_hat().mu == pytest.approx(fresh.mu_hat().mu, abs=1e-6)
    assert reused.mu_hat().sigma == pytest.approx(fresh.mu_hat().sigma, rel=1e-4)
    assert reused.discovery().q0 == pytest.approx(fresh.discovery().q0, abs=1e-6)
    assert inf.mu_hat().mu != pytest.approx(reused.mu_hat().mu, abs=1e-6)  # the original keeps its own data
    warm = Inference(*model_and_data(build_workspace(sig, gen, second))).warm_start(inf)
    assert warm.mu_hat(sigma=False).mu == pytest.approx(fresh.mu_hat().mu, abs=1e-6)
    assert math.isnan(warm.mu_hat(sigma=False).sigma)
