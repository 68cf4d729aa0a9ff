"""Paper B's study as library calls (mcsurrogate.workflows) on small synthetic samples (no Pythia)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import awkward as ak
import numpy as np
import pytest
from matplotlib.figure import Figure

from mcsurrogate.amplification import ComparisonRow, fit_auc_power_law, paper_b_candidates
from mcsurrogate.errors import InputError
from mcsurrogate.generators.higgs_benchmark import M_W
from mcsurrogate.io import write_events
from mcsurrogate.refinement import fit_reweighting
from mcsurrogate.stats import ScanPoint, SpuriousSignalToy
from mcsurrogate.surrogate import Surrogate
from mcsurrogate.validation import validate
from mcsurrogate.workflows.amplification_study import (
    FULL,
    SMALL,
    StudyConfig,
    fit_generated_reweighting,
    study_background,
    study_signal,
    weighting_summary,
)
from mcsurrogate.workflows.bars import QualityBars, quality_bars, toy_floor
from mcsurrogate.workflows.cut_analysis import MIN_SELECTED_GENERATED, classifier_cut_analysis, fit_edges
from mcsurrogate.workflows.figures import plot_comparison, plot_learning_curve, plot_training, plot_w1_matrix
from mcsurrogate.workflows.model_choice import choose_best, reuse_model
from mcsurrogate.workflows.report import amplification_markdown, learning_curve_markdown
from mcsurrogate.workflows.sample_cache import CHUNK_SIZE, cached_sample
from mcsurrogate.workflows.splits import split_background, split_signal


def _records(n: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    pt = rng.gamma(3.0, 20.0, n) + 25.0
    return ak.zip({"pt": pt, "eta": rng.normal(0, 1.2, n), "m_lv": 2 * pt, "i": np.arange(n)})


# -- sample cache and splits ----------------------------------------------------------------------------------
def test_a_cached_run_is_reused_and_its_w_mass_made_exact(tmp_path):
    rng = np.random.default_rng(0)
    m_lv = np.where(rng.random(CHUNK_SIZE) < 0.5, M_W * (1 + 1e-9), rng.uniform(100, 300, CHUNK_SIZE))
    events = ak.zip({"m_lv": m_lv, "m_bb": rng.uniform(20, 400, CHUNK_SIZE)})
    write_events(events, tmp_path / f"ttbar_n{CHUNK_SIZE}_seed3_chunk{CHUNK_SIZE}.parquet")
    got, info = cached_sample("ttbar", 1_000, 3, tmp_path)
    assert len(got) == 1_000 and np.array_equal(ak.to_numpy(got["m_bb"]), ak.to_numpy(events["m_bb"])[:1_000])
    near = np.isclose(m_lv[:1_000], M_W)
    assert np.all(ak.to_numpy(got["m_lv"])[near] == M_W) and near.any()
    assert info.to_dict() == {
        "process": "ttbar",
        "seed": 3,
        "chunk_size": CHUNK_SIZE,
        "n_events": 1_000,
        "file": f"ttbar_n{CHUNK_SIZE}_seed3_chunk{CHUNK_SIZE}.parquet",
        "cached": True,
    }
    with pytest.raises(InputError, match="'ttbar' or 'signal'"):
        cached_sample("wjets", 10, 3, tmp_path)  # type: ignore[arg-type]


def test_the_study_samples_are_split_as_run_py_split_them(tmp_path):
    n = 5_000
    write_events(_records(n, 1), tmp_path / f"ttbar_n{n}_seed4_chunk{CHUNK_SIZE}.parquet")
    write_events(_records(n, 2), tmp_path / f"signal_n{n}_seed5_chunk{CHUNK_SIZE}.parquet")
    parts, info = study_background(tmp_path, 1_001, seed=4)
    assert parts.sizes() == {"holdout": 500, "select": 100, "train": 401} and info.seed == 4
    ids = np.concatenate([ak.to_numpy(p["i"]) for p in (parts.holdout, parts.select, parts.train)])
    assert sorted(ids) == list(range(1_001))  # disjoint, and every event used
    perm = np.random.default_rng(4).permutation(1_001)  # run.py's 50/10/40 cut of one seeded permutation
    assert np.array_equal(ak.to_numpy(parts.train["i"]), perm[600:])
    signal, sig_info = study_signal(tmp_path, 11, seed=4)  # signal sample seed + 1, split seed + 2
    assert sig_info.seed == 5 and (len(signal.classifier), len(signal.template)) == (5, 6)
    assert np.array_equal(ak.to_numpy(signal.classifier["i"]), np.random.default_rng(6).permutation(11)[:5])


def test_splits_are_seeded_and_refuse_too_few_events():
    events = _records(100, 0)
    a, b = split_background(events, 7), split_background(events, 7)
    assert ak.all(a.train["i"] == b.train["i"]) and not ak.all(a.train["i"] == split_background(events, 8).train["i"])
    with pytest.raises(InputError, match="at least 10 events"):
        split_background(events[:9], 0)
    with pytest.raises(InputError, match="at least 2 events"):
        split_signal(events[:1], 0)


# -- quality bars ---------------------------------------------------------------------------------------------
def _toy(k: int, lumi: float, **figures: Any) -> SpuriousSignalToy:
    return SpuriousSignalToy(toy=k, luminosity=lumi, background_yield=1e4 * lumi, signal_yield=500 * lumi, **figures)


def _toys(worst: list[float], quantity: str, failed: int = 0) -> list[SpuriousSignalToy]:
    rows = []
    for k, w in enumerate(worst):  # two luminosities per toy, the second the worse
        rows += [_toy(k, 1.0, **{quantity: -w / 2}), _toy(k, 10.0, **{quantity: -w})]
    return rows + [_toy(99, 1.0, **{quantity: float("nan"), "status": "failed", "reason": "fit failed"})] * failed


def test_toy_floor_takes_each_toys_worst_point():
    worst = [0.2, 0.5, 0.9, 1.5, 3.0]
    floor = toy_floor(_toys(worst, "z_signed", failed=2), "z_signed")
    assert floor.n_toys == 5 and floor.failed_points == 2
    assert floor.max_abs_median == pytest.approx(0.9)
    assert floor.max_abs_q84 == pytest.approx(np.quantile(worst, 0.84))
    assert floor.fraction_below_1 == pytest.approx(0.6)
    assert toy_floor([], "ul_shift").to_dict() == {"n_toys": 0, "failed_points": 0}
    with pytest.raises(InputError, match="quantity"):
        toy_floor([], "mu_hat")
    with pytest.raises(InputError, match="limits=True"):  # toys run without limits have no limit shift
        toy_floor(_toys(worst, "z_signed"), "ul_shift")


def _scan_rows(z: list[float], shifts: list[float], n_gen: int = 5_000) -> list[ScanPoint]:
    point = {"luminosity": 1.0, "background_yield": 1e4, "signal_yield": 500.0, "mu_injected": 0.0}
    rows = [ScanPoint(template="mc", systematic=0.10, z_signed=0.0, **point)]
    for syst in (0.05, 0.10):
        for zi, s in zip(z, shifts, strict=True):
            for n in (1_000, n_gen):
                shift = s if n == n_gen else 50.0  # the smaller template does not count
                rows.append(
                    ScanPoint(
                        template="generated", n_generated=n, systematic=syst, z_signed=zi, ul_shift=shift, **point
                    )
                )
    return rows


def test_quality_bars_judge_the_largest_template_and_keep_report_json_layout():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_500, 2))
    report = validate(
        x[:700],
        x[700:1_400] + np.array([0.0, 0.3]),
        ["a", "b"],
        n_permutations=20,
        n_bootstrap=20,
        density_ratio=False,
        physics_distances=False,
        seed=0,
    )
    toys = [_toy(k, 1.0, z_signed=-w, ul_shift=w / 2) for k, w in enumerate([0.4, 0.8, 1.2])]
    bars = quality_bars(report, _scan_rows([0.3, -0.7], [0.2, -0.9]), 700, toys, toys)
    assert isinstance(bars, QualityBars)
    assert bars.c2st.value == report.c2st.auc and not bars.c2st.holds  # 700 events per class are too few
    assert bars.w1.details["worst"] == "b" and not bars.w1.holds
    assert bars.spurious_z0.value == pytest.approx(0.7) and bars.spurious_z0.holds
    assert bars.ul_shift.value == pytest.approx(0.9) and bars.ul_shift.holds
    d = bars.to_dict()
    json.dumps(d, allow_nan=False)
    assert list(d) == [
        "c2st_auc_at_most_0.52",
        "w1_within_3x_baseline",
        "spurious_z0_below_1_at_10pct",
        "ul_shift_within_mc_1sigma",
    ]
    assert list(d["spurious_z0_below_1_at_10pct"]) == [
        "value",
        "n_generated",
        "failed_points",
        "holds",
        "perfect_generator",
        "memorising_learner",
    ]
    assert d["ul_shift_within_mc_1sigma"]["perfect_generator_at_10pct"] == toy_floor(toys, "ul_shift").to_dict()
    failed = _scan_rows([0.3, -0.7], [0.2, -0.9])
    nan = float("nan")
    failed[-1] = dataclasses.replace(failed[-1], status="failed", reason="no convergence", z_signed=nan, ul_shift=nan)
    failed[-3] = dataclasses.replace(failed[-3], status="failed", reason="no convergence", z_signed=nan, ul_shift=nan)
    again = quality_bars(report, failed, 700, toys, toys)
    assert not again.spurious_z0.holds and again.spurious_z0.details["failed_points"] == 2  # cannot vouch for it
    assert not again.ul_shift.holds and again.ul_shift.details["failed_points"] == 2


# -- classifier-cut analysis ----------------------------------------------------------------------------------
def test_too_few_selected_generated_events_stop_the_cut_analysis_before_the_scan():
    rng = np.random.default_rng(1)

    def background(n: int) -> np.ndarray:
        return np.column_stack([rng.exponential(80.0, n), rng.normal(0, 1, n)])

    signal = np.column_stack([rng.normal(125.0, 10.0, 2_000), rng.normal(1.5, 1, 2_000)])
    with pytest.raises(InputError, match=f"at least {MIN_SELECTED_GENERATED:,}"):
        classifier_cut_analysis(
            background(4_000),
            background(2_000),
            background(2_000),
            signal[:1_000],
            signal[1_000:],
            features=["m_bb", "x"],
            scan_points=1,
            n_toys=1,
        )
    with pytest.raises(InputError, match="fits m_bb"):
        classifier_cut_analysis(background(10), background(10), background(10), signal, signal, features=["a", "b"])
    assert np.array_equal(fit_edges(), np.linspace(0.0, 500.0, 26))


# -- model choice, reweighting ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model() -> tuple[Surrogate, ak.Array]:
    train = _records(600, 3)
    model = Surrogate(
        targets=["pt", "eta"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training={"epochs": 2, "seed": 0}
    ).fit(train, progress=False)
    return model, train


def test_a_reused_model_must_come_from_the_same_training_split(tmp_path, tiny_model):
    model, _ = tiny_model
    path = model.save(tmp_path / "best_model")
    with pytest.raises(InputError, match="trained on 600 events; this study's training split has 601"):
        reuse_model(path, 601)
    alone = reuse_model(path, 600)
    assert alone.name == str(path) and alone.comparison == [] and alone.training["reused_model"] == str(path)
    assert list(alone.histories) == [str(path)] and "trained_by" not in alone.training
    rows = [{"name": "maf/gauss-rank", "failure": None}, {"name": "glow/logit", "failure": "diverged"}]
    (tmp_path / "comparison.json").write_text(json.dumps(rows))
    (tmp_path / "report.json").write_text(json.dumps({"command": "python run.py --small", "training": {}}))
    beside = reuse_model(path, 600)
    assert beside.name == "maf/gauss-rank" and beside.comparison == rows
    assert beside.training["trained_by"] == "python run.py --small"


def _comparison_row(name: str, auc: float, n_train: int = 0, best_epoch: int = 2, epochs_run: int = 3) -> ComparisonRow:
    return ComparisonRow(
        name=name,
        family=name.split("/")[0],
        preprocessing=name.split("/")[1],
        parameters=100,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        train_seconds=1.0,
        train_events_per_second=10.0,
        sample_events_per_second=20.0,
        nll=1.5,
        nll_excluded=0,
        auc=auc,
        auc_ci=(auc - 0.01, auc + 0.01),
        p_value=0.01,
        w1_ratio_max=2.0,
        w1_ratio_median=1.0,
        w1_ratio_by_feature={"pt": 2.0, "eta": 1.0},
        flagged_features=[],
        fpd=0.1,
        fpd_baseline=0.05,
        kpd=0.1,
        kpd_baseline=0.05,
        extra={"n_train": n_train},
    )


def test_choose_best_keeps_the_comparison_and_every_history(tiny_model):
    model, _ = tiny_model
    rows = [_comparison_row("maf/logit", 0.58), _comparison_row("glow/gauss-rank", 0.53)]
    choice = choose_best(rows, {"maf/logit": model, "glow/gauss-rank": model}, {"epochs": 2})
    assert choice.name == "glow/gauss-rank" and choice.comparison == [r.to_dict() for r in rows]
    assert list(choice.histories) == ["maf/logit", "glow/gauss-rank"] and choice.training == {"epochs": 2}


def test_the_generated_events_reweighting_and_its_summary(tiny_model):
    model, train = tiny_model
    fast = {"folds": 2, "max_iter": 20}
    rw = fit_generated_reweighting(model, train, ["pt", "eta"], seed=1, **fast)
    assert rw.n_reference == 600 and rw.n_generated == 1_200  # a fit sample of twice the training events
    w = rw.weights(train)
    summary = weighting_summary(rw, w)
    assert summary["kish_efficiency_amplified"] == pytest.approx(w.sum() ** 2 / (len(w) * np.sum(w**2)))
    assert list(summary["weight_quantiles"]) == ["1%", "50%", "99%"]
    assert summary["weight_quantiles"]["50%"] == pytest.approx(np.median(w))
    assert summary["n_reference"] == rw.to_dict()["n_reference"]
    json.dumps(summary, allow_nan=False)
    direct = fit_reweighting(train, model.sample(1_200, seed=21), ["pt", "eta"], seed=1, **fast)  # seed + 20
    assert np.array_equal(direct.weights(train), rw.weights(train))


# -- configuration ----------------------------------------------------------------------------------------------
def test_the_presets_are_run_py_s_and_bad_settings_are_named():
    assert (SMALL.n_background, SMALL.n_signal, SMALL.blocks, SMALL.hidden, SMALL.epochs) == (12_000, 4_000, 4, 64, 20)
    assert (SMALL.patience, SMALL.batch_size, SMALL.scan_points, SMALL.toys) == (5, 256, 4, 5)
    assert (FULL.n_background, FULL.n_signal, FULL.blocks, FULL.hidden, FULL.epochs) == (
        1_000_000,
        200_000,
        10,
        128,
        100,
    )
    assert (FULL.patience, FULL.batch_size, FULL.scan_points, FULL.toys) == (15, 1024, 10, 20)
    assert FULL.training() == {"epochs": 100, "patience": 15, "batch_size": 1024, "seed": 1}
    config = dataclasses.replace(SMALL, ema_decay=0.999, differences=("masses",), families=("maf",))
    assert config.training()["ema_decay"] == 0.999
    assert [c.name for c in config.candidates()] == ["maf/logit/masses", "maf/gauss-rank/masses"]
    assert config.candidates() == paper_b_candidates(families=["maf"], blocks=4, hidden=64, differences=["masses"])
    for bad, match in (
        ({"amplification": 0.0}, "amplification"),
        ({"threshold": 1.0}, "threshold"),
        ({"classifier_background": "data"}, "classifier_background"),
        ({"n_signal": 0}, "n_signal"),
        ({"ema_decay": 1.5}, "ema_decay"),
    ):
        with pytest.raises(InputError, match=match):
            StudyConfig(**bad)


# -- figures and reports ----------------------------------------------------------------------------------------
def test_the_comparison_figures_draw_failed_candidates_as_such():
    rows = [_comparison_row("maf/logit", 0.58).to_dict(), _comparison_row("glow/gauss-rank", 0.53).to_dict()]
    rows[1] |= {"w1_ratio_by_feature": {"pt": float("nan"), "eta": float("nan")}}
    assert isinstance(plot_comparison(rows), Figure)
    matrix = plot_w1_matrix(rows, ["pt", "eta"])
    assert [t.get_text() for t in matrix.axes[0].texts] == ["2.0", "1.0", "failed", "failed"]
    training = plot_training({"a": [{"epoch": 1, "val_nll": 2.0}, {"epoch": 2, "val_nll": 1.5}]})
    assert list(training.axes[0].lines[0].get_ydata()) == [2.0, 1.5]


def test_the_learning_curve_report_and_figure():
    rows = [_comparison_row("made-mog/gauss-rank", 0.5 + 0.1 * (n / 1e3) ** -0.5, n_train=n) for n in (1_000, 4_000)]
    rows.append(_comparison_row("made-mog/gauss-rank", 0.5 + 0.1 / 4, n_train=16_000, best_epoch=3))
    law = fit_auc_power_law([r.extra["n_train"] for r in rows], [r.auc for r in rows], [r.auc_ci for r in rows])
    assert [r.converged for r in rows] == [True, True, False]
    fig = plot_learning_curve(rows, law, 0.52)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines[0].get_xdata()) == 3
    (candidate,) = paper_b_candidates(families=["made-mog"], preprocessings=["gauss-rank"], blocks=2, hidden=8)
    reach = law.n_for(0.52)
    report = {
        "command": "python learning_curve.py --small",
        "device": "CPU x86_64 (2 threads)",
        "c2st_events_per_class": 5_000,
        "wall_s": 90.0,
        "target_auc": 0.52,
        "n_train_for_target": reach,
        "n_train_for_target_1sigma": list(law.n_for_band(0.52)),
    }
    text = learning_curve_markdown(report, candidate, rows, law)
    assert "| 16,000 | 3 (3) | no |" in text and f"n ≈ {reach:.3g} training events" in text
    assert "Points still improving" in text and text.endswith("![learning curve](learning_curve.png)\n")
    assert "Power law" not in learning_curve_markdown(report, candidate, rows, None)


def _report(comparison: list[dict]) -> dict:
    floor = {"n_toys": 5, "failed_points": 0, "max_abs_median": 0.68, "max_abs_q84": 1.5}
    floor |= {"max_abs_q95": 2.4, "fraction_below_1": 0.8}
    bar = {"value": 0.5, "holds": True}
    return {
        "command": "python analyses/higgs_amplification/run.py --small",
        "samples": {"background": {"n_events": 12_000}, "signal": {"n_events": 4_000}, "splits": {"train": 4_800}},
        "timings": {"total_s": 600.0},
        "comparison": comparison,
        "best_model": "maf/logit",
        "training": {"trained_by": "python run.py"},
        "validation": {"c2st": {"auc": 0.55, "auc_ci": [0.54, 0.56], "p_value": 0.005}, "flagged_features": ["met"]},
        "amplification": {"n_generated": 48_000, "factor": 10.0, "n_train": 4_800, "sample_events_per_second": 1e5},
        "reweighting": None,
        "classifier_cut": {
            "classifier_background_events": 16_000,
            "classifier_background": "generated",
            "crosscheck": {"efficiency_generated": 0.1, "efficiency_generated_error": 0.01, "efficiency_mc": 0.11}
            | {"efficiency_mc_error": 0.01, "efficiency_pull": -0.7, "shape_chi2": 30.0, "shape_ndf": 24}
            | {"shape_chi2_pvalue": 0.2},
            "selected": {"mc_training": 1_674},
        },
        "effective_statistics": {"worth": None},
        "quality_bars": {
            "c2st_auc_at_most_0.52": bar,
            "w1_within_3x_baseline": bar,
            "spurious_z0_below_1_at_10pct": bar | {"perfect_generator": floor, "memorising_learner": floor},
            "ul_shift_within_mc_1sigma": bar
            | {"perfect_generator_at_10pct": floor, "memorising_learner_at_10pct": floor},
        },
    }


def test_the_study_report_has_the_comparison_or_the_reused_model():
    rows = [_comparison_row(n, 0.58).to_dict() for n in ("maf/logit", "made-mog/logit", "rqs-ar/logit")]
    rows.append(_comparison_row("glow/logit", float("nan")).to_dict())
    rows[3]["failure"] = "diverged"
    rows[0]["nll"] = 7.2e22  # one selection event mapped to |z| ~ 1e22
    rows[1]["resumed_from_epoch"] = 3  # trained to its end before the command was started again
    rows[2]["resumed_from_epoch"] = 1
    text = amplification_markdown(_report(rows))
    assert "| glow/logit | — | failed to train: diverged |" in text and "Best: **maf/logit**" in text
    assert "| maf/logit | 100 | 3 (2) | 7.2e+22 |" in text and "| 10 | 20 |" in text
    assert "| trained before a restart | 20 |" in text and "| 10 (from epoch 1) | 20 |" in text
    assert "no saturation measured" in text and "pass the |Z₀| < 1 bar in 80% of 5 toys" in text
    assert "1,674 training events pass the cut" in text
    reused = amplification_markdown(_report([]))
    assert "## Model comparison" not in reused and "trained by `python run.py`" in reused


def test_the_study_records_the_recipe_its_chosen_model_trained_with(tmp_path):
    from mcsurrogate.workflows.amplification_study import _choose_model
    from mcsurrogate.workflows.splits import BackgroundSplits

    rng = np.random.default_rng(8)

    def part(n: int) -> ak.Array:
        return ak.zip({"pt": rng.gamma(3.0, 20.0, n) + 25.0, "eta": rng.normal(0, 1.2, n)})

    parts = BackgroundSplits(holdout=part(10), select=part(300), train=part(1200))
    config = StudyConfig(
        families=("flow-matching",),
        preprocessings=("gauss-rank",),
        blocks=1,
        hidden=8,
        epochs=2,
        batch_size=256,
        permutations=19,
    )
    choice = _choose_model(config, parts, ["pt", "eta"], tmp_path)
    assert choice.name == "flow-matching/gauss-rank"
    assert choice.training["selection"] == "last" and choice.training["epochs"] == 2  # its own, capped
    assert choice.model.train_config.selection == "last" and choice.model.train_config.lr == 3e-3
    assert json.loads((tmp_path / "comparison.json").read_text())[0]["name"] == choice.name


# -- paper A's scenario bars (mcsurrogate.response.study) -------------------------------------------------------
def test_paper_a_quality_bars_per_scenario():
    from mcsurrogate.response.study import SCENARIOS, scenario_quality

    consistency = {"precise_ratio_min": 0.97, "precise_ratio_max": 1.03, "precise_bins": 9, "n_bins": 10}
    evaluation = {
        "width_ratio_consistency": consistency | {"chi2_per_bin": 1.1},
        "mass_mean_difference_gev": -0.03,
        "diphoton_target": {"mass_mean_err": 0.01},
        "diphoton_generated": {"mass_mean_err": 0.02},
        "mass_sd_ratio": 1.025,
        "correlation_target": np.eye(6).tolist(),
        "correlation_generated": (np.eye(6) + 0.01).tolist(),
        "tail_fraction_target": {"low": 0.10, "high": 0.02},
        "tail_fraction_generated": {"low": 0.105, "high": 0.0225},
    }
    result = {"evaluation": evaluation, "mass_mean_difference_vs_first_reference_gev": -0.04, "data": None}
    baseline = scenario_quality("baseline", result)
    assert baseline["core_width_ratio_0.95_1.05"]["holds"] and not baseline["core_width_ratio_0.98_1.02_goal"]["holds"]
    assert baseline["mass_mean_within_0.05_GeV"]["statistical_uncertainty"] == pytest.approx(np.hypot(0.01, 0.02))
    assert baseline["mass_mean_within_0.05_GeV"]["holds"] and not baseline["mass_sd_within_2pct"]["holds"]
    corr = scenario_quality("correlation_rho0.5", result)
    assert corr["designed_correlations_within_0.03"]["value"] == pytest.approx(0.01)
    assert corr["other_correlations_within_0.03_of_zero"]["holds"]
    asym = scenario_quality("asymmetric", result | {"data": {"dropped_outside_preprocessing_domain": 3}})
    assert not asym["no_event_dropped"]["holds"] and asym["tail_fraction_within_10pct"]["value"] == pytest.approx(0.125)
    assert list(SCENARIOS) == ["baseline", "correlation_rho0.5", "correlation_rho1.0", "asymmetric"]
