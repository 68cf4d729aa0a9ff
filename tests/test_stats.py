"""pyhf statistics: known answers (Cowan–Cranmer–Gross–Vitells asymptotics), agreement with plain pyhf on the
exported workspace, scans, the classifier cut, the CLI, and bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import hist
import numpy as np
import pyhf
import pytest
from scipy import optimize
from scipy.stats import norm

from mcsurrogate.cli import main
from mcsurrogate.errors import FitError, InputError
from mcsurrogate.stats import (
    BackgroundSample,
    Channel,
    Inference,
    Sample,
    SurrogateUncertainty,
    TemplateSpread,
    analysis_workspace,
    asimov_counts,
    build_workspace,
    cut_crosscheck,
    fill_template,
    fit_diagnostics,
    measure_spurious_signal,
    model_and_data,
    plot_post_cut_shapes,
    plot_prefit_postfit,
    plot_pulls,
    plot_ranking,
    plot_spurious_signal_floor,
    rows_to_csv,
    scale_template,
    scan,
    spurious_signal_toys,
    train_signal_classifier,
)


def counting(s: float, b: float, n: float) -> Inference:
    """One-bin counting experiment, no systematics, no staterror."""
    sig = scale_template(fill_template(np.array([0.5]), bins=1, range=(0, 1)), total=s)
    bkg = scale_template(fill_template(np.array([0.5]), bins=1, range=(0, 1)), total=b)
    ws = build_workspace(sig, bkg, np.array([n]), systematic=0.0, staterror=False)
    return Inference(*model_and_data(ws))


def test_discovery_significance_matches_asimov_formula():
    s, b = 12.0, 40.0
    z_expected = math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))  # CCGV eq. (97)
    d = counting(s, b, s + b).discovery()
    assert d.z0 == pytest.approx(z_expected, rel=1e-5)
    assert d.p0 == pytest.approx(norm.sf(z_expected), rel=1e-4)
    assert d.mu_hat == pytest.approx(1.0, abs=1e-5)


def test_mu_hat_and_sigma_of_counting_experiment():
    s, b, mu = 20.0, 100.0, 0.7
    n = mu * s + b
    fit = counting(s, b, n).mu_hat()
    assert fit.mu == pytest.approx(mu, abs=1e-5)
    assert fit.sigma == pytest.approx(math.sqrt(n) / s, rel=1e-3)


def test_expected_limit_matches_asymptotic_formula():
    s, b = 10.0, 50.0
    # median expected CLs limit, background-only Asimov data n = b: √q_μ,A = Φ⁻¹(1 − α/2)
    target = norm.ppf(1 - 0.05 / 2) ** 2 / 2
    mu_up = optimize.brentq(lambda mu: mu * s - b * math.log(1 + mu * s / b) - target, 1e-6, 100)
    limit = counting(s, b, b).upper_limit()
    assert limit.median == pytest.approx(mu_up, rel=1e-4)
    assert limit.observed == pytest.approx(mu_up, rel=1e-4)
    assert list(limit.expected) == sorted(limit.expected)


def test_limit_above_the_suggested_poi_range():
    # a weak signal: the limit on μ lies far above pyhf's suggested normfactor bound of 10
    s, b = 2.0, 400.0
    target = norm.ppf(1 - 0.05 / 2) ** 2 / 2
    mu_up = optimize.brentq(lambda mu: mu * s - b * math.log(1 + mu * s / b) - target, 1e-6, 1e4)
    assert mu_up > 20
    limit = counting(s, b, b).upper_limit()
    assert limit.median == pytest.approx(mu_up, rel=1e-4)
    assert limit.observed == pytest.approx(mu_up, rel=1e-4)


def test_expected_limit_solver_falls_back_to_a_bracket():
    # √q_A(μ) with an inflection at the root stalls the secant steps; the bracketed fallback still solves it, and a
    # target that √q_A never reaches is an error, not a silently wrong limit
    inf = counting(10.0, 50.0, 50.0)
    curve = lambda mu: 1.64 + (mu - 1.3) ** 3
    inf.sqrt_q_asimov = curve  # type: ignore[method-assign]
    for target in (1.64, 2.0, 3.0):
        mu = inf._solve_sqrt_qa(target, {1.0: curve(1.0)}, 1e-4)
        assert curve(mu) == pytest.approx(target, abs=1e-4)
    saturating = lambda mu: 3.0 * (1 - math.exp(-mu / 5))
    inf.sqrt_q_asimov = saturating  # type: ignore[method-assign]
    with pytest.raises(FitError, match="cannot be reached"):
        inf._solve_sqrt_qa(3.5, {1.0: saturating(1.0)}, 1e-4)


def test_pyhf_s_optimiser_is_the_last_resort_and_its_failure_a_fit_error_logged_once(monkeypatch, caplog):
    from mcsurrogate.stats import inference

    monkeypatch.setattr(inference, "FIT_LADDER", ("pyhf",))  # the other steps are switched off
    inf = counting(10.0, 50.0, 70.0)
    result = inf.fit()
    assert result.method == "pyhf" and inf.fit_steps["pyhf"] >= 1
    assert result.parameters[inf.poi] == pytest.approx(2.0, abs=1e-6)  # μ̂ = (n − b) / s, confirmed by Newton
    saved = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(maxiter=1))
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(FitError, match="pyhf: "):
            counting(10.0, 50.0, 70.0).fit()
    finally:
        pyhf.set_backend(*saved)
    # FitError carries pyhf's message; pyhf's own ERROR record with its traceback is not repeated in the log
    assert not [r for r in caplog.records if r.name.startswith("pyhf") and r.levelno >= logging.ERROR]


def _templates(rng: np.random.Generator, n_b: int = 20_000):
    sig = fill_template(rng.normal(125, 10, 5_000), bins=12, range=(60, 200))
    bkg = fill_template(rng.exponential(50, n_b) + 60, bins=sig.axes[0])
    bkg = scale_template(bkg, total=5_000.0)
    sig = scale_template(sig, total=250.0)
    return sig, bkg


def test_asimov_recovers_injected_mu_and_zero_significance():
    sig, bkg = _templates(np.random.default_rng(1))
    for mu in (0.0, 1.0):
        ws = build_workspace(sig, bkg, asimov_counts(sig, bkg, mu))
        inf = Inference(*model_and_data(ws))
        assert inf.mu_hat().mu == pytest.approx(mu, abs=1e-4)
        if mu == 0.0:
            assert inf.discovery().z0 == pytest.approx(0.0, abs=1e-3)


def test_agrees_with_plain_pyhf_on_the_exported_workspace():
    rng = np.random.default_rng(2)
    sig, bkg = _templates(rng)
    observed = asimov_counts(sig, bkg, 0.3) + rng.normal(0, 5, 12)
    ws = build_workspace(sig, bkg, np.clip(observed, 0, None), systematic=0.1)
    spec = json.loads(json.dumps(dict(ws)))  # the JSON anyone can re-fit
    model, data = model_and_data(pyhf.Workspace(spec))
    inf = Inference(model, data)
    limit = inf.upper_limit()
    cls_obs = pyhf.infer.hypotest(limit.observed, data, model)
    assert float(cls_obs) == pytest.approx(0.05, abs=2e-4)
    for band, mu in enumerate(limit.expected):
        expected_set = pyhf.infer.hypotest(mu, data, model, return_expected_set=True)[1]
        assert float(expected_set[band]) == pytest.approx(0.05, abs=2e-4)
    # CLs at a fixed μ: identical to pyhf's
    ours_obs, ours_exp = inf.cls(0.3)
    theirs_obs, theirs_exp = pyhf.infer.hypotest(0.3, data, model, return_expected_set=True)
    assert ours_obs == pytest.approx(float(theirs_obs), rel=1e-3)
    assert ours_exp == pytest.approx([float(v) for v in theirs_exp], rel=1e-3)
    # μ̂ and p₀ against pyhf's fit and q0 hypotest
    pars = pyhf.infer.mle.fit(data, model)
    assert inf.mu_hat().mu == pytest.approx(float(pars[model.config.poi_index]), abs=2e-3)
    assert inf.discovery().p0 == pytest.approx(float(pyhf.infer.hypotest(0.0, data, model, test_stat="q0")), rel=1e-2)


def test_staterror_shrinks_with_generated_statistics():
    rng = np.random.default_rng(3)
    sig, _ = _templates(rng)
    rel = []
    for n in (1_000, 100_000):
        gen = scale_template(fill_template(rng.exponential(50, n) + 60, bins=sig.axes[0]), total=5_000.0)
        ws = build_workspace(sig, gen, gen.values())
        mod = next(m for m in ws["channels"][0]["samples"][1]["modifiers"] if m["type"] == "staterror")
        rel.append(np.array(mod["data"]) / gen.values())
    assert np.median(rel[0] / rel[1]) == pytest.approx(10.0, rel=0.1)


def test_systematic_kinds_build_valid_models():
    sig, bkg = _templates(np.random.default_rng(4))
    for kind, types in (("normsys", {"normsys"}), ("shapesys", {"shapesys"}), ("both", {"normsys", "shapesys"})):
        ws = build_workspace(sig, bkg, bkg.values(), systematic=0.2, systematic_kind=kind)
        found = {m["type"] for m in ws["channels"][0]["samples"][1]["modifiers"]} - {"staterror"}
        assert found == types
        assert Inference(*model_and_data(ws)).upper_limit().median > 0


def test_bad_input_is_named():
    rng = np.random.default_rng(5)
    sig, bkg = _templates(rng)
    holes = fill_template(np.full(100, 70.0), bins=sig.axes[0])
    with pytest.raises(InputError, match="bin"):
        build_workspace(sig, holes, holes.values())
    ws = build_workspace(sig, holes, holes.values(), empty_bins="floor")
    assert min(ws["channels"][0]["samples"][1]["data"]) > 0
    other = fill_template(rng.normal(125, 10, 100), bins=10, range=(60, 200))
    with pytest.raises(InputError, match="binning"):
        build_workspace(sig, other, other.values())
    with pytest.raises(InputError, match="non-negative"):
        build_workspace(sig, bkg, -bkg.values())
    with pytest.raises(InputError, match="positive"):
        scale_template(bkg, factor=0.0)
    with pytest.raises(InputError, match="NaN"):
        fill_template(np.array([1.0, np.nan]), bins=2, range=(0, 2))


@pytest.fixture(scope="module")
def scan_inputs():
    rng = np.random.default_rng(6)
    return (
        Sample(rng.normal(125, 10, 5_000)),
        Sample(rng.exponential(50, 20_000) + 60),
        Sample(rng.exponential(50, 200_000) + 60),
    )


def test_scan_rows_reference_and_reproducibility(scan_inputs, tmp_path):
    kwargs = {
        "bins": 10,
        "range": (60, 200),
        "luminosities": [0.5, 5.0],
        "n_generated": [2_000, 200_000],
        "systematics": [0.05, 0.2],
        "progress": False,
    }
    rows = scan(*scan_inputs, **kwargs)
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        if r.template == "mc":  # the data are the MC's Asimov counts: no bias, no spurious signal
            assert abs(r.mu_hat) < 1e-4 and abs(r.z_signed) < 1e-2 and r.delta_ul_median == 0
        assert r.ul_expected_m2 < r.ul_expected_median < r.ul_expected_p2
    big = [r for r in rows if r.n_generated == 200_000]
    assert all(abs(r.z_signed) < 3 for r in big)  # same distribution as the MC
    # the background yield follows the luminosity, the signal is 5 % of it
    r = rows[0]
    assert r.signal_yield == pytest.approx(0.05 * r.background_yield)
    assert rows == scan(*scan_inputs, **kwargs, processes=2)
    assert rows_to_csv(rows).count("\n") == len(rows) + 1


def test_scan_bad_input(scan_inputs):
    with pytest.raises(InputError, match="luminosities"):
        scan(*scan_inputs, bins=10, range=(60, 200), luminosities=[0.0], progress=False)
    with pytest.raises(InputError, match="n_generated"):
        scan(*scan_inputs, bins=10, range=(60, 200), n_generated=[0], progress=False)
    with pytest.raises(InputError, match="has 200,000"):
        scan(*scan_inputs, bins=10, range=(60, 200), n_generated=[10**6], progress=False)
    with pytest.raises(InputError, match=r"scan point .*N_gen 10\b"):
        scan(
            *scan_inputs,
            bins=10,
            range=(60, 200),
            luminosities=[1.0],
            n_generated=[10],
            systematics=[0.1],
            on_error="raise",
            progress=False,
        )


def test_scan_records_failed_points(scan_inputs):
    kwargs = {"bins": 10, "range": (60, 200), "luminosities": [1.0], "systematics": [0.1], "progress": False}
    with pytest.raises(InputError, match="on_error"):
        scan(*scan_inputs, n_generated=[10], on_error="skip", **kwargs)  # type: ignore[arg-type]
    rows = scan(*scan_inputs, n_generated=[10, 20_000], on_error="record", **kwargs)
    by_n = {r.n_generated: r for r in rows}
    assert by_n[None].error is None and by_n[20_000].error is None and math.isfinite(by_n[20_000].z0)
    bad = by_n[10]
    assert "N_gen 10" in (bad.error or "") and math.isnan(bad.mu_hat) and math.isnan(bad.delta_ul_median)
    assert bad.luminosity == 1.0 and bad.systematic == 0.1  # the settings are kept


#: the keys of a scan.json row, in file order (a failed point's figures are null)
SCAN_ROW_KEYS = [
    *("systematic", "luminosity", "background_yield", "signal_yield", "mu_injected", "template", "n_generated"),
    *("mu_hat", "mu_sigma", "z0", "z_signed", "p0", "ul_observed", "n_fits"),
    *("ul_expected_m2", "ul_expected_m1", "ul_expected_median", "ul_expected_p1", "ul_expected_p2"),
    *("mu_at_bound", "fit_steps", "status", "reason", "error"),
    *("mu_bias", "delta_mu_hat", "delta_ul_observed", "delta_ul_median", "ul_shift"),
]


def test_scan_rows_and_toys_are_typed_and_read_back_from_strict_json(scan_inputs, tmp_path):
    from mcsurrogate.stats import ScanPoint, SpuriousSignalToy, save_scan_plots

    kwargs = {"bins": 10, "range": (60, 200), "luminosities": [1.0, 4.0], "systematics": [0.1], "progress": False}
    rows = scan(*scan_inputs, n_generated=[10, 20_000], **kwargs)
    assert all(isinstance(r, ScanPoint) for r in rows)
    text = json.dumps([r.to_dict() for r in rows], allow_nan=False)
    back = json.loads(text)
    assert [list(d) for d in back] == [SCAN_ROW_KEYS] * len(rows)
    failed = next(d for d in back if d["status"] == "failed")
    assert failed["mu_hat"] is None and failed["n_fits"] is None and failed["error"] == failed["reason"]
    again = [ScanPoint.from_dict(d) for d in back]
    assert [r.to_dict() for r in again] == back and math.isnan(again[1].mu_hat)
    assert rows_to_csv(again) == rows_to_csv(rows)  # failed figures, n_fits too, are "nan" in the CSV
    assert sorted(save_scan_plots(again, tmp_path)) == sorted(save_scan_plots(rows, tmp_path / "direct"))
    with pytest.raises(InputError, match="no field 'mu'"):
        ScanPoint.from_dict({**back[0], "mu": 1.0})
    with pytest.raises(InputError, match="lacks its field 'template'"):
        ScanPoint.from_dict({k: v for k, v in back[0].items() if k != "template"})
    with pytest.raises(InputError, match="z0 must be a number"):
        ScanPoint.from_dict({**back[0], "z0": "large"})
    beyond = dataclasses.replace(rows[0], z0=math.inf)  # data the background alone cannot make: Z0 = inf
    assert beyond.to_dict()["z0"] == "inf" and ScanPoint.from_dict(beyond.to_dict()).z0 == math.inf
    # toys: the limit keys only where computed
    sig, bkg, _ = scan_inputs
    toy_kw = {"bins": 10, "range": (60, 200), "luminosities": [1.0], "n_toys": 2, "progress": False}
    for limits in (False, True):
        toys = spurious_signal_toys(sig, Sample(bkg.values[:5_000]), 10**6, limits=limits, n_training=4_000, **toy_kw)
        dicts = json.loads(json.dumps([t.to_dict() for t in toys], allow_nan=False))
        assert all(("ul_shift" in d) is limits and d["n_training"] == 4_000 for d in dicts)
        assert [SpuriousSignalToy.from_dict(d).to_dict() for d in dicts] == dicts
        assert all(isinstance(t, SpuriousSignalToy) and t.has_limits is limits for t in toys)


def test_spurious_signal_toys_are_the_mc_statistics_floor(scan_inputs):
    sig, bkg, _ = scan_inputs
    mc = Sample(bkg.values[:5_000])
    kwargs = {"bins": 10, "range": (60, 200), "luminosities": [1.0, 16.0], "systematic": 0.0, "progress": False}
    rows = spurious_signal_toys(sig, mc, 10**7, n_toys=40, seed=3, **kwargs)
    assert len(rows) == 80 and all(r.error is None for r in rows)
    z = {lumi: np.array([r.z_signed for r in rows if r.luminosity == lumi]) for lumi in (1.0, 16.0)}
    # data as large as the MC: its fluctuations are about one standard deviation of the fit (a bit less, the
    # multinomial fixes the total); 16 × the MC with the same fluctuations frozen in: √16 × as significant
    assert 0.6 < z[1.0].std() < 1.3 and abs(z[1.0].mean()) < 0.5
    assert z[16.0].std() / z[1.0].std() == pytest.approx(4.0, rel=0.1)
    assert rows == spurious_signal_toys(sig, mc, 10**7, n_toys=40, seed=3, **kwargs)
    common = {k: kwargs[k] for k in ("bins", "range", "luminosities", "progress")}
    measured = scan(sig, mc, bkg, n_generated=[10_000], systematics=[0.0], **common)
    fig = plot_spurious_signal_floor(measured, rows, systematic=0.0)
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # the 95 % and 68 % bands
    assert [line.get_ydata()[0] for line in ax.lines[1:2]] == [measured[1].z_signed]  # the generated template
    with pytest.raises(InputError, match="unweighted"):
        spurious_signal_toys(sig, Sample(mc.values, np.ones(5_000)), 100, **kwargs)
    with pytest.raises(InputError, match="n_toys"):
        spurious_signal_toys(sig, mc, 100, n_toys=0, **kwargs)


def test_spurious_signal_toys_of_a_memorising_learner_carry_its_training_fluctuations(scan_inputs):
    sig, bkg, _ = scan_inputs
    mc = Sample(bkg.values[:5_000])
    kwargs = {"bins": 10, "range": (60, 200), "luminosities": [1.0], "systematic": 0.0, "progress": False}
    perfect = spurious_signal_toys(sig, mc, 10**7, n_toys=80, seed=5, **kwargs)
    learner = spurious_signal_toys(sig, mc, 10**7, n_toys=80, n_training=5_000, seed=5, **kwargs)
    assert all(r.n_training == 5_000 and r.error is None for r in learner)
    assert all(r.n_training is None and "n_training" not in r.to_dict() for r in perfect)
    # a template learned from as many events as the MC has doubles the variance of the data-template difference
    ratio = np.std([r.z_signed for r in learner]) / np.std([r.z_signed for r in perfect])
    assert 1.15 < ratio < 1.75
    # a training sample a thousand times larger is the perfect generator again, within the toys' spread
    big = spurious_signal_toys(sig, mc, 10**7, n_toys=80, n_training=5 * 10**6, seed=5, **kwargs)
    assert np.std([r.z_signed for r in big]) / np.std([r.z_signed for r in perfect]) == pytest.approx(1, abs=0.2)
    measured = scan(
        sig,
        mc,
        bkg,
        n_generated=[10_000],
        systematics=[0.0],
        bins=10,
        range=(60, 200),
        luminosities=[1.0],
        progress=False,
    )
    ax = plot_spurious_signal_floor(measured, perfect, systematic=0.0, learner_toys=learner).axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--" and line.get_color() == "tab:blue"]
    assert len(dashed) == 2 and dashed[0].get_ydata()[0] < 0 < dashed[1].get_ydata()[0]
    assert "5,000 training events" in ax.get_legend_handles_labels()[1][2]
    for bad in (0, 2.5, True):
        with pytest.raises(InputError, match="n_training"):
            spurious_signal_toys(sig, mc, 100, n_training=bad, **kwargs)


def test_spurious_signal_toys_with_limits_size_the_limit_shift_of_a_perfect_generator(scan_inputs):
    sig, bkg, gen = scan_inputs
    mc = Sample(bkg.values[:5_000])
    lumis = [0.1, 30.0]
    kwargs = {"bins": 10, "range": (60, 200), "luminosities": lumis, "systematic": 0.1, "progress": False, "seed": 4}
    plain = spurious_signal_toys(sig, mc, 10**6, n_toys=4, **kwargs)
    rows = spurious_signal_toys(sig, mc, 10**6, n_toys=4, limits=True, **kwargs)
    for p, r in zip(plain, rows, strict=True):  # the same toys and fits; the limits come on top
        assert r.error is None and r.mu_hat == pytest.approx(p.mu_hat, abs=1e-6)
        assert r.ul_shift == pytest.approx((r.ul_expected_median - r.ul_expected_median_mc) / r.ul_half_band_mc)
    shift = {lumi: np.array([r.ul_shift for r in rows if r.luminosity == lumi]) for lumi in lumis}
    # data a tenth of the MC: the data's own statistics set both limits. Data 30 × the MC: the MC template's
    # staterror limits the reference, not the 200 × larger perfect template: its expected limit is more than a
    # half band lower, for every toy
    assert np.all(np.abs(shift[0.1]) < 0.3)
    assert np.all(shift[30.0] < -1.0)
    common = {k: kwargs[k] for k in ("bins", "range", "luminosities", "progress")}
    measured = scan(sig, mc, gen, n_generated=[100_000], systematics=[0.1], **common)
    generated = [r for r in measured if r.template == "generated"]
    ref = {r.luminosity: r for r in measured if r.template == "mc"}
    for r in generated:
        m = ref[r.luminosity]
        assert r.ul_shift == pytest.approx(
            (r.ul_expected_median - m.ul_expected_median) / (0.5 * (m.ul_expected_p1 - m.ul_expected_m1))
        )
    fig = plot_spurious_signal_floor(measured, rows, systematic=0.1, quantity="ul_shift")
    assert [line.get_ydata()[0] for line in fig.axes[0].lines[1:2]] == [generated[0].ul_shift]
    with pytest.raises(InputError, match="limits=True"):
        plot_spurious_signal_floor(measured, plain, systematic=0.1, quantity="ul_shift")
    with pytest.raises(InputError, match="quantity"):
        plot_spurious_signal_floor(measured, rows, systematic=0.1, quantity="mu_hat")  # type: ignore[arg-type]


def test_classifier_cut_and_crosscheck():
    rng = np.random.default_rng(7)
    sig = rng.normal([1.0, 1.0], 1.0, size=(4_000, 2))
    gen = rng.normal([-1.0, 0.0], 1.5, size=(8_000, 2))
    mc = rng.normal([-1.0, 0.0], 1.5, size=(8_000, 2))
    cut = train_signal_classifier(sig, gen, seed=0)
    assert cut.select(sig).mean() > 0.7 and cut.select(mc).mean() < 0.3
    check = cut_crosscheck(
        cut, gen[:4000], mc[:4000], fit_generated=gen[:4000, 0], fit_mc=mc[:4000, 0], edges=np.linspace(-6, 6, 13)
    )
    assert abs(check["efficiency_pull"]) < 4 and check["shape_chi2_pvalue"] > 1e-4
    shifted = cut_crosscheck(
        cut,
        gen[:4000] + np.array([1.0, 0.5]),
        mc[:4000],
        fit_generated=gen[:4000, 0] + 1.0,
        fit_mc=mc[:4000, 0],
        edges=np.linspace(-6, 6, 13),
    )
    assert abs(shifted["efficiency_pull"]) > 5
    # the post-cut histograms behind the χ²: selected events per bin, and their ratio in the figure
    assert sum(shifted["counts_mc"]) == shifted["n_selected_mc"] and len(shifted["counts_generated"]) == 12
    fig = plot_post_cut_shapes(shifted, signal_counts=np.histogram(sig[:, 0], shifted["edges"])[0])
    ratio = fig.axes[1].containers[0].lines[0].get_ydata()
    mc_n, gen_n = np.array(shifted["counts_mc"], float), np.array(shifted["counts_generated"], float)
    filled = (mc_n > 0) & (gen_n > 0)
    assert filled.sum() >= 5 and np.isnan(ratio[~filled]).all()
    np.testing.assert_allclose(ratio[filled], (gen_n[filled] / gen_n.sum()) / (mc_n[filled] / mc_n.sum()))
    with pytest.raises(InputError, match="features"):
        cut.score(np.zeros((3, 5)))
    # weighted generated events: unit weights change nothing; the exact density ratio repairs a shifted generator
    edges = np.linspace(-6, 6, 13)
    unit = cut_crosscheck(
        cut,
        gen[:4000],
        mc[:4000],
        fit_generated=gen[:4000, 0],
        fit_mc=mc[:4000, 0],
        edges=edges,
        weights_generated=np.ones(4000),
    )
    assert unit == check
    off = rng.normal([-0.4, 0.0], 1.5, size=(40_000, 2))
    w = np.exp((-((off[:, 0] + 1.0) ** 2) + (off[:, 0] + 0.4) ** 2) / (2 * 1.5**2))  # p_mc/p_off
    raw = cut_crosscheck(cut, off, mc, fit_generated=off[:, 0], fit_mc=mc[:, 0], edges=edges)
    fixed = cut_crosscheck(cut, off, mc, fit_generated=off[:, 0], fit_mc=mc[:, 0], edges=edges, weights_generated=w)
    assert abs(raw["efficiency_pull"]) > 5 and abs(fixed["efficiency_pull"]) < 3
    s_off = cut.select(off)
    eff = np.sum(w * s_off) / w.sum()
    assert fixed["efficiency_generated"] == pytest.approx(eff, rel=1e-12)
    assert fixed["efficiency_generated_error"] == pytest.approx(np.sqrt(np.sum(w**2 * (s_off - eff) ** 2)) / w.sum())
    assert raw["shape_chi2_pvalue"] < 1e-6 < fixed["shape_chi2_pvalue"]
    np.testing.assert_allclose(sum(fixed["counts_generated"]), w[s_off & (np.abs(off[:, 0]) < 6)].sum())
    with pytest.raises(InputError, match="weights_generated"):
        cut_crosscheck(cut, off, mc, fit_generated=off[:, 0], fit_mc=mc[:, 0], edges=edges, weights_generated=-w)


def test_cli_fit_and_scan(tmp_path, scan_inputs):
    import awkward as ak

    from mcsurrogate.io import write_events

    paths = {}
    for name, sample in zip(("sig", "bkg", "gen"), scan_inputs, strict=False):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_events(ak.Array({"m_bb": sample.values[:50_000]}), paths[name])
    out = tmp_path / "fit"
    assert (
        main(
            [
                "fit",
                paths["sig"],
                paths["bkg"],
                "--var",
                "m_bb",
                "--bins",
                "10",
                "--range",
                "60,200",
                "--asimov-mu",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "fit.json").read_text())
    assert result["mu_hat"] == pytest.approx(1.0, abs=1e-3)
    model, data = model_and_data(pyhf.Workspace(json.loads((out / "workspace.json").read_text())))
    assert float(pyhf.infer.hypotest(result["ul_observed"], data, model)) == pytest.approx(0.05, abs=2e-4)
    assert main(["fit", paths["sig"], paths["bkg"], "--var", "m_bb", "--range", "60,200", "--out", str(out)]) == 2
    assert (
        main(["fit", paths["sig"], paths["bkg"], "--var", "nope", "--range", "60,200", "--out", str(tmp_path / "x")])
        == 2
    )
    out = tmp_path / "scan"
    assert (
        main(
            [
                "scan",
                paths["sig"],
                paths["bkg"],
                paths["gen"],
                "--var",
                "m_bb",
                "--bins",
                "10",
                "--range",
                "60,200",
                "--lumis",
                "1,10",
                "--ngen",
                "1000,50000",
                "--systematics",
                "0.1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "scan.json").read_text())["rows"]
    assert len(rows) == 2 * 3
    assert (out / "scan.csv").exists() and (out / "ul_vs_lumi_syst10.png").stat().st_size > 1000


def test_import_stats_loads_no_torch_matplotlib_or_sklearn():
    """``import mcsurrogate.stats`` stays light: figures import matplotlib/mplhep when drawn, the cut's shape check
    imports the validation layer when run, the ensemble (torch) lives in mcsurrogate.ensemble."""
    import subprocess
    import sys

    code = "import sys, mcsurrogate.stats\nprint(sorted(m for m in ('torch', 'matplotlib', 'mplhep', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# ------------------------------------------------------------------------------- the surrogate's own uncertainty
def _spread_setup(rng: np.random.Generator, k: int = 40, rebin: int = 1):
    """A falling background, a signal peak, and K member templates that differ by a random tilt (5 % per σ) and a
    random wiggle in three bins (2 %): a correlated and an uncorrelated part of an ensemble's spread."""
    sig, bkg = _templates(rng, n_b=200_000)
    if rebin > 1:
        sig, bkg = sig[:: hist.rebin(rebin)], bkg[:: hist.rebin(rebin)]
    b = bkg.values()
    tilt = np.linspace(-1.0, 1.0, b.size) * 0.05
    members = []
    for a in rng.normal(size=k):
        wiggle = np.zeros(b.size)
        idx = [i for i in (2, 5, 9) if i < b.size]
        wiggle[idx] = rng.normal(scale=0.02, size=len(idx))
        members.append(_counts(b * (1 + a * tilt + wiggle), sig))
    return sig, bkg, TemplateSpread.from_templates(members, nominal=bkg, shape_only=False), tilt


def _counts(values: np.ndarray, like) -> object:
    h = like.copy()
    h.view().value = values
    h.view().variance = np.zeros_like(values)
    return h


def _pyhf_limit(mu: float, data, model, band: int | None) -> float:
    """pyhf's own CLs = 0.05 root near ``mu`` (secant from two hypotests 0.1 % apart): band None = observed."""

    def cls(m: float) -> float:
        obs, exp = pyhf.infer.hypotest(m, data, model, return_expected_set=True)
        return float(obs) if band is None else float(exp[band])

    m1 = mu * 1.001
    c0, c1 = cls(mu), cls(m1)
    return mu + (0.05 - c0) * (m1 - mu) / (c1 - c0)


@pytest.mark.parametrize("kind", ["histosys", "shapesys", "spurious"])
def test_surrogate_modifier_round_trips_and_matches_plain_pyhf(kind):
    rng = np.random.default_rng(11)
    sig, bkg, spread, _ = _spread_setup(rng, rebin=2)  # 6 bins: pyhf's own fits of 20 parameters take minutes
    unc = {
        "histosys": lambda: SurrogateUncertainty.histosys(spread, max_components=2),
        "shapesys": lambda: SurrogateUncertainty.shapesys(spread),
        "spurious": lambda: SurrogateUncertainty.spurious(0.2),
    }[kind]()
    observed = rng.poisson(asimov_counts(sig, bkg, 1.0)).astype(float)
    ws = build_workspace(sig, bkg, observed, surrogate_uncertainty=unc)
    text = json.dumps(dict(ws), allow_nan=False)
    names = {m["name"] for ch in json.loads(text)["channels"] for s in ch["samples"] for m in s["modifiers"]}
    assert set(unc.modifier_names()) <= names  # named so that it is visible in the JSON
    expected_names = {"histosys": {"surrogate_shape0", "surrogate_residual"}, "shapesys": {"surrogate_spread"}}
    assert expected_names.get(kind, {"spurious_signal"}) <= names
    model, data = model_and_data(pyhf.Workspace(json.loads(text)))  # plain pyhf, from the JSON alone
    inf = Inference(model, data)
    pars = pyhf.infer.mle.fit(data, model)
    assert inf.mu_hat().mu == pytest.approx(float(pars[model.config.poi_index]), abs=1e-3)
    limit = inf.upper_limit()
    assert _pyhf_limit(limit.observed, data, model, None) == pytest.approx(limit.observed, rel=1e-3)
    for band in (2,):  # the median (every band: test_agrees_with_plain_pyhf_on_the_exported_workspace)
        assert _pyhf_limit(limit.expected[band], data, model, band) == pytest.approx(limit.expected[band], rel=1e-3)


def test_histosys_components_carry_the_correlated_spread():
    _, _, spread, tilt = _spread_setup(np.random.default_rng(12), k=400)
    unc = SurrogateUncertainty.histosys(spread, max_components=1, min_fraction=0.5)
    assert unc.components.shape == (1, tilt.size)
    np.testing.assert_allclose(np.abs(unc.components[0]), np.abs(tilt), atol=0.006)  # the tilt, relative
    assert unc.relative[[2, 5, 9]] == pytest.approx([0.02] * 3, rel=0.2)  # the wiggle stays per bin
    assert np.delete(unc.relative, [2, 5, 9]) == pytest.approx(0.0, abs=0.004)
    again = SurrogateUncertainty.from_dict(json.loads(json.dumps(unc.to_dict(), allow_nan=False)))
    np.testing.assert_allclose(again.components, unc.components)
    assert again.modifier_names() == ["surrogate_shape0", "surrogate_residual"]


def test_spurious_signal_adds_its_size_in_quadrature():
    """A signal-shaped nuisance of size S_spur (units of μ) adds S_spur² to σ²(μ̂) (linear-Gaussian regime)."""
    sig, bkg = _templates(np.random.default_rng(13), n_b=200_000)
    observed = asimov_counts(sig, bkg, 0.0)
    plain = Inference(*model_and_data(build_workspace(sig, bkg, observed, systematic=0.0, staterror=False)))
    size = 0.3
    spur = build_workspace(
        sig, bkg, observed, systematic=0.0, staterror=False, surrogate_uncertainty=SurrogateUncertainty.spurious(size)
    )
    with_spur = Inference(*model_and_data(spur))
    assert with_spur.mu_hat().sigma == pytest.approx(math.hypot(plain.mu_hat().sigma, size), rel=2e-3)


def test_spurious_signal_is_measured_on_a_generated_template():
    rng = np.random.default_rng(14)
    sig, mc = _templates(rng, n_b=400_000)
    b = mc.values()
    bump = 0.25 * sig.values()  # the generator puts a quarter of a signal too little under the peak
    generated = _counts(b - bump, mc)
    measured = measure_spurious_signal(sig, generated, mc, staterror=False)
    assert measured.mu == pytest.approx(0.25, rel=0.05)  # the MC has that much more than the template
    assert measured.events == pytest.approx(measured.mu * sig.values().sum())
    assert SurrogateUncertainty.spurious(measured).spurious_mu == pytest.approx(abs(measured.mu))
    json.dumps(measured.to_dict(), allow_nan=False)


def test_surrogate_modifier_bad_input_is_named():
    sig, bkg, spread, _ = _spread_setup(np.random.default_rng(15), k=5)
    obs = bkg.values()
    with pytest.raises(InputError, match="SurrogateUncertainty"):
        build_workspace(sig, bkg, obs, surrogate_uncertainty="histosys")  # type: ignore[arg-type]
    twice = [SurrogateUncertainty.shapesys(spread), SurrogateUncertainty.shapesys(spread)]
    with pytest.raises(InputError, match="surrogate_spread"):
        build_workspace(sig, bkg, obs, surrogate_uncertainty=twice)
    other = fill_template(np.linspace(60, 199, 500), bins=7, range=(60, 200))
    with pytest.raises(InputError, match="has 12 bins; the background template has 7"):
        build_workspace(other, other, other.values(), surrogate_uncertainty=SurrogateUncertainty.shapesys(spread))
    huge = SurrogateUncertainty("histosys", components=np.full((1, 12), 1.5))
    with pytest.raises(InputError, match="≥ 100 %"):
        build_workspace(sig, bkg, obs, surrogate_uncertainty=huge)
    with pytest.raises(InputError, match="kind must be one of histosys, shapesys, spurious"):
        SurrogateUncertainty("normsys")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="spurious-signal size"):
        SurrogateUncertainty.spurious(float("nan"))


# ------------------------------------------------------------------------------- multi-channel analyses
def _analysis(rng: np.random.Generator):
    """SR (6 bins of m_bb, GeV) with signal, a generated tt̄ (surrogate histosys, normfactor) and an MC 'other'
    (normsys, a jes histosys); CR (3 bins of a classifier score in [0, 1]) with tt̄ and 'other' only."""
    sr_axis = hist.axis.Regular(6, 60.0, 200.0)
    cr_axis = hist.axis.Regular(3, 0.0, 1.0)

    def h(axis, values, rel=0.01):
        out = hist.Hist(axis, storage=hist.storage.Weight())
        out.view().value = values
        out.view().variance = (rel * values) ** 2
        return out

    tt_sr = np.array([800.0, 600.0, 420.0, 300.0, 200.0, 130.0])
    other_sr = np.array([200.0, 180.0, 150.0, 120.0, 90.0, 60.0])
    sig_sr = np.array([5.0, 30.0, 90.0, 60.0, 15.0, 3.0])
    tt_cr, other_cr = np.array([3000.0, 2000.0, 900.0]), np.array([400.0, 300.0, 200.0])
    members = [
        h(sr_axis, tt_sr * (1 + a * np.linspace(-0.04, 0.04, 6) + rng.normal(0, 0.005, 6))) for a in rng.normal(size=12)
    ]
    spread = TemplateSpread.from_templates(members, nominal=h(sr_axis, tt_sr))
    channels = {
        "SR": Channel(
            observed=rng.poisson(1.0 * sig_sr + 1.1 * tt_sr + other_sr).astype(float),
            signal=h(sr_axis, sig_sr),
            backgrounds={
                "ttbar": BackgroundSample(
                    h(sr_axis, tt_sr),
                    kind="generated",
                    normfactor="mu_ttbar",
                    surrogate_uncertainty=SurrogateUncertainty.histosys(spread, max_components=2),
                ),
                "other": BackgroundSample(
                    h(sr_axis, other_sr, 0.05),
                    normsys=0.2,
                    histosys={"jes": (h(sr_axis, other_sr * 1.05), h(sr_axis, other_sr * 0.96))},
                ),
            },
        ),
        "CR": Channel(
            observed=rng.poisson(1.1 * tt_cr + other_cr).astype(float),
            backgrounds={
                "ttbar": BackgroundSample(h(cr_axis, tt_cr), kind="generated", normfactor="mu_ttbar"),
                "other": BackgroundSample(h(cr_axis, other_cr, 0.05), normsys=0.2),
            },
        ),
    }
    return channels


def test_multi_channel_fits_match_plain_pyhf():
    ws = analysis_workspace(_analysis(np.random.default_rng(21)))
    spec = json.loads(json.dumps(dict(ws), allow_nan=False))
    names = {ch["name"]: {m["name"] for s in ch["samples"] for m in s["modifiers"]} for ch in spec["channels"]}
    assert {"mu", "mu_ttbar", "other_norm", "jes", "staterror_SR", "SR_ttbar_surrogate_shape0"} <= names["SR"]
    assert {"mu_ttbar", "other_norm", "staterror_CR"} <= names["CR"] and "mu" not in names["CR"]
    model, data = model_and_data(pyhf.Workspace(spec))
    inf = Inference(model, data)
    pars = np.asarray(pyhf.infer.mle.fit(data, model), dtype=float)
    ours = inf.mu_hat()
    assert ours.mu == pytest.approx(pars[model.config.poi_index], abs=1e-3)
    k = model.config.par_slice("mu_ttbar").start
    assert ours.parameters[k] == pytest.approx(pars[k], abs=1e-3)
    assert ours.parameters[k] == pytest.approx(1.1, abs=0.05)  # the CR measures tt̄'s normalisation
    limit = inf.upper_limit()
    assert _pyhf_limit(limit.observed, data, model, None) == pytest.approx(limit.observed, rel=1e-3)
    assert _pyhf_limit(limit.median, data, model, 2) == pytest.approx(limit.median, rel=1e-3)


def test_fit_diagnostics_known_answers():
    """One bin, n = s + b, a 10 % normsys on b: μ and the normsys are degenerate, so the data leave the normsys at
    its prior (pull 0, constraint 1) and fixing it at ±1σ moves μ̂ by ∓0.1 b/s. A control region of 1000 expected
    events observing 1100 measures a free normalisation as 1.1 ± √1100/1000."""
    one = hist.axis.Regular(1, 0.0, 1.0)

    def h(v):
        out = hist.Hist(one, storage=hist.storage.Weight())
        out.view().value = [v]
        out.view().variance = [0.0]
        return out

    s, b = 20.0, 100.0
    channels = {
        "SR": Channel(
            observed=np.array([s + b]),
            signal=h(s),
            signal_staterror=False,
            backgrounds={"bkg": BackgroundSample(h(b), normsys=0.1, staterror=False)},
        ),
        "CR": Channel(
            observed=np.array([1100.0]),
            backgrounds={"ctrl": BackgroundSample(h(1000.0), staterror=False, normfactor="k")},
        ),
    }
    diag = fit_diagnostics(analysis_workspace(channels), edges={"SR": [100.0, 150.0]})
    assert diag.mu_hat == pytest.approx(1.0, abs=1e-4)
    norm = diag.pull("bkg_norm")
    assert norm.pull == pytest.approx(0.0, abs=1e-3) and norm.constraint == pytest.approx(1.0, abs=1e-3)
    assert norm.kind == "normsys" and norm.prefit_width == 1.0
    k = diag.pull("k")
    assert k.postfit_value == pytest.approx(1.1, abs=1e-4) and k.postfit_width == pytest.approx(
        1100**0.5 / 1000, rel=1e-3
    )
    assert math.isnan(k.pull)  # a free parameter has no pull
    impact = next(i for i in diag.impacts if i.name == "bkg_norm")
    assert impact.postfit_up == pytest.approx(-0.1 * b / s, abs=1e-3)
    assert impact.postfit_down == pytest.approx(0.1 * b / s, abs=1e-3)
    assert impact.prefit_up == pytest.approx(-0.1 * b / s, abs=1e-3)
    assert diag.impacts[0].name == "bkg_norm"  # k only moves the CR: no impact on μ̂
    assert abs(next(i for i in diag.impacts if i.name == "k").postfit_up) < 1e-4
    assert diag.yields["SR"]["prefit"] == {"signal": [s], "bkg": [b]} and diag.yields["SR"]["edges"] == [100.0, 150.0]
    assert diag.yields["CR"]["postfit"]["ctrl"] == pytest.approx([1100.0], rel=1e-4)
    json.dumps(diag.to_dict(), allow_nan=False)


def test_diagnostics_figures_and_multi_channel_bad_input():
    channels = _analysis(np.random.default_rng(22))
    diag = fit_diagnostics(analysis_workspace(channels), parameters=["other_norm", "jes", "mu_ttbar"])
    assert {i.name for i in diag.impacts} == {"other_norm", "jes", "mu_ttbar"}
    assert len(plot_pulls(diag).axes) == 1 and len(plot_ranking(diag).axes) == 1
    assert len(plot_prefit_postfit(diag, "SR").axes) == 2
    with pytest.raises(InputError, match="no channel 'VR'"):
        plot_prefit_postfit(diag, "VR")
    with pytest.raises(InputError, match="unknown parameter"):
        fit_diagnostics(analysis_workspace(channels), parameters=["nope"])
    sr = channels["SR"]
    with pytest.raises(InputError, match="no background sample"):
        analysis_workspace({"SR": Channel(observed=sr.observed, signal=sr.signal, backgrounds={})})
    with pytest.raises(InputError, match="no channel has a signal"):
        analysis_workspace({"CR": channels["CR"]})
    mc_with_modifier = BackgroundSample(
        sr.backgrounds["other"].template, surrogate_uncertainty=SurrogateUncertainty.spurious(0.1)
    )
    with pytest.raises(InputError, match="is MC"):
        analysis_workspace({"SR": Channel(observed=sr.observed, signal=sr.signal, backgrounds={"o": mc_with_modifier})})
    with pytest.raises(InputError, match="observation has 3 bins"):
        analysis_workspace({"SR": Channel(observed=np.ones(3), signal=sr.signal, backgrounds=sr.backgrounds)})
    with pytest.raises(InputError, match="binning"):
        analysis_workspace(
            {
                "SR": Channel(
                    observed=sr.observed, signal=sr.signal, backgrounds={"x": channels["CR"].backgrounds["other"]}
                )
            }
        )
