"""The amplification workflow's library calls on small synthetic samples (no Pythia)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.amplification import (
    CONTINUOUS_FEATURES,
    JET_PT_DIFFERENCES,
    MASS_DIFFERENCES,
    AucPowerLaw,
    ComparisonRow,
    best_candidate,
    compare_models,
    feature_matrix,
    fit_auc_power_law,
    flow_features,
    from_differences,
    generate,
    learning_curve,
    paper_b_candidates,
    with_differences,
)
from mcsurrogate.errors import InputError
from mcsurrogate.generators.higgs_benchmark import FEATURES
from mcsurrogate.surrogate import Surrogate


def _events(n: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    pt = rng.gamma(3.0, 20.0, n) + 25.0
    return ak.zip({"pt": pt, "eta": rng.normal(0, 1.2, n), "m": pt * rng.uniform(1.5, 3.0, n)})


def _compare(train: ak.Array, select: ak.Array, training: dict, n_permutations: int):
    cands = paper_b_candidates(families=["maf", "realnvp"], preprocessings=["gauss-rank"], blocks=2, hidden=16)
    rows, models = compare_models(
        train,
        select,
        cands,
        features=["pt", "eta", "m"],
        training=training,
        n_permutations=n_permutations,
        progress=False,
    )
    return cands, rows, models


def test_continuous_features_are_paper_b_s_eighteen():
    assert len(CONTINUOUS_FEATURES) == 18
    assert set(CONTINUOUS_FEATURES) <= set(FEATURES)
    assert not any(f.endswith(("_phi", "_btag")) for f in CONTINUOUS_FEATURES)


def test_candidate_grid_and_bad_family():
    grid = paper_b_candidates()
    assert len(grid) == 12
    assert {c.preprocessing for c in grid} == {"logit", "gauss-rank"}
    assert grid[0].flow["residual"] is True  # paper B's MADE-MoG uses residual MADE blocks
    with pytest.raises(InputError, match="unknown flow families"):
        paper_b_candidates(families=["made-mog", "vae"])
    (fm,) = paper_b_candidates(families=["flow-matching"], preprocessings=["gauss-rank"])  # by name, not by default
    assert fm.flow["model"] == "flow-matching" and fm.flow["activation"] == "silu"
    assert all(c.flow["model"] != "flow-matching" for c in grid)


def test_a_family_trains_with_its_own_recipe_under_the_shared_epochs():
    (maf, fm) = paper_b_candidates(families=["maf", "flow-matching"], preprocessings=["gauss-rank"])
    shared = {"epochs": 100, "patience": 15, "lr": 1e-3, "batch_size": 1024}
    assert maf.training_config(shared) == shared  # paper B's families: the shared recipe
    own = fm.training_config(shared)
    assert own["selection"] == "last" and own["patience"] is None and own["lr"] == 3e-3
    assert own["epochs"] == 40 and own["batch_size"] == 1024
    assert fm.training_config(shared | {"epochs": 3})["epochs"] == 3  # a smoke comparison stays short
    model = fm.surrogate(["pt", "eta", "m"], shared)
    assert model.train_config.selection == "last" and model.train_config.epochs == 40


def test_compare_models_scores_every_candidate_on_unseen_events():
    train, select = _events(3000, 1), _events(1500, 2)
    _, rows, models = _compare(train, select, {"epochs": 3, "batch_size": 256}, 20)
    assert [r.name for r in rows] == ["maf/gauss-rank", "realnvp/gauss-rank"]
    for r in rows:
        assert 0.0 <= r.auc <= 1.0 and r.auc_ci[0] <= r.auc <= r.auc_ci[1]
        assert np.isfinite(r.nll) and r.parameters > 0 and r.epochs_run <= 3
        assert set(r.w1_ratio_by_feature) == {"pt", "eta", "m"}
    assert best_candidate(rows) in rows
    assert set(models) == {r.name for r in rows}
    with pytest.raises(InputError, match="lack the columns"):
        feature_matrix(train, ["pt", "lepton_pt"])


def test_diverging_candidates_are_reported_not_fatal():
    train, select = _events(2000, 3), _events(800, 4)
    cands, rows, models = _compare(
        train, select, {"epochs": 2, "batch_size": 256, "lr": 1e8, "clip_grad_norm": None}, 10
    )
    assert [r.name for r in rows] == [c.name for c in cands]  # the loop went on after the first failure
    assert all(r.failure and np.isnan(r.auc) for r in rows) and not models
    with pytest.raises(InputError, match="every candidate failed"):
        best_candidate(rows)


def test_a_comparison_started_again_resumes_from_its_checkpoints(tmp_path, monkeypatch):
    train, select = _events(2000, 7), _events(800, 8)
    cands = paper_b_candidates(families=["maf", "realnvp"], preprocessings=["gauss-rank"], blocks=2, hidden=16)
    kwargs = {"features": ["pt", "eta", "m"], "training": {"epochs": 3, "batch_size": 256}, "n_permutations": 19}
    reference, _ = compare_models(train, select, cands, progress=False, **kwargs)

    fit = Surrogate.fit
    calls = []

    def killed_at_the_second_candidate(self, *args, **kw):
        calls.append(kw["checkpoint_dir"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the batch job's wall-time limit
        return fit(self, *args, **kw)

    monkeypatch.setattr(Surrogate, "fit", killed_at_the_second_candidate)
    with pytest.raises(KeyboardInterrupt):
        compare_models(train, select, cands, checkpoint_dir=tmp_path, progress=False, **kwargs)
    monkeypatch.setattr(Surrogate, "fit", fit)
    assert calls == [tmp_path / "maf/gauss-rank", tmp_path / "realnvp/gauss-rank"]
    assert (tmp_path / "maf/gauss-rank/last.safetensors").is_file()
    assert not (tmp_path / "realnvp/gauss-rank").exists()

    rows, _ = compare_models(train, select, cands, checkpoint_dir=tmp_path, progress=False, **kwargs)
    assert [r.resumed_from_epoch for r in rows] == [3, 0]  # the finished candidate is not trained again
    for again, ref in zip(rows, reference, strict=True):
        assert again.nll == ref.nll and again.auc == ref.auc and again.best_epoch == ref.best_epoch


def _row(name: str, auc: float, w1_ratio_max: float) -> ComparisonRow:
    nan = float("nan")
    return ComparisonRow(
        name,
        "maf",
        "logit",
        10,
        1,
        1,
        nan,
        nan,
        nan,
        nan,
        0,
        auc,
        (auc, auc),
        nan,
        w1_ratio_max,
        nan,
        {},
        [],
        nan,
        nan,
        nan,
        nan,
    )


def test_best_candidate_vetoes_far_out_samples_before_ranking_by_auc():
    close_but_wild = _row("glow/gauss-rank", 0.51, 5e6)
    sound = _row("maf/logit", 0.56, 1.8)
    assert best_candidate([close_but_wild, sound]) is sound
    assert best_candidate([_row("a", 0.51, float("nan")), sound]) is sound
    assert best_candidate([close_but_wild, sound], max_w1_ratio=1e7) is close_but_wild
    with pytest.warns(UserWarning, match="choosing by C2ST AUC alone"):
        assert best_candidate([close_but_wild, _row("b", 0.6, 50.0)]) is close_but_wild
    with pytest.raises(InputError, match="max_w1_ratio"):
        best_candidate([sound], max_w1_ratio=0)


def test_a_conditional_candidate_draws_its_discrete_conditions_from_the_training_mc():
    def tagged(n: int, seed: int) -> ak.Array:
        events = _events(n, seed)
        tag = (np.random.default_rng(seed + 100).random(n) < 0.3).astype(float)
        return ak.with_field(ak.with_field(events, events.m * (1 + 2 * tag), "m"), tag, "tag")  # tagged: 3x the mass

    train, select = tagged(3000, 5), tagged(1500, 6)
    cands = paper_b_candidates(families=["maf"], preprocessings=["gauss-rank"], blocks=2, hidden=16, conditions=["tag"])
    assert [c.name for c in cands] == ["maf/gauss-rank/conditional"] and cands[0].conditions == ("tag",)
    rows, models = compare_models(
        train,
        select,
        cands,
        features=["pt", "eta", "m"],
        training={"epochs": 5, "batch_size": 256},
        n_permutations=19,
        progress=False,
    )
    model = models["maf/gauss-rank/conditional"]
    assert model.conditions == ["tag"] and rows[0].failure is None
    g = generate(model, 6000, source=train, seed=5)
    tag = g.tag.to_numpy()
    assert set(np.unique(tag)) == {0.0, 1.0} and tag.mean() == pytest.approx(train.tag.to_numpy().mean(), abs=0.03)
    m = g.m.to_numpy()
    assert np.median(m[tag == 1]) > 1.5 * np.median(m[tag == 0])  # the flow uses its condition (true ratio 3)
    np.testing.assert_array_equal(
        generate(model, 500, source=train, seed=7).m, generate(model, 500, source=train, seed=7).m
    )
    with pytest.raises(InputError, match="source="):
        generate(model, 10)


MASSES = ["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"]


def _masses(n: int, seed: int) -> ak.Array:
    """The seven HIGGS masses (GeV) with their kinematic order: a system is heavier than its subsystems."""
    rng = np.random.default_rng(seed)
    m = {"m_jj": rng.gamma(5.0, 20.0, n) + 10.0, "m_bb": rng.gamma(4.0, 30.0, n) + 10.0}
    m["m_lv"] = np.where(rng.random(n) < 0.7, 80.385, 80.385 + rng.exponential(10.0, n))
    m["m_jjj"] = m["m_jj"] + 20.0 + rng.gamma(3.0, 20.0, n)
    m["m_jlv"] = m["m_lv"] + 20.0 + rng.gamma(3.0, 20.0, n)
    m["m_wbb"] = np.maximum(m["m_bb"], m["m_jlv"]) + 10.0 + rng.gamma(2.0, 30.0, n)
    m["m_wwbb"] = np.maximum(m["m_wbb"], m["m_jjj"]) + 50.0 + rng.gamma(2.0, 40.0, n)
    return ak.zip({k: m[k] for k in MASSES})


def test_mass_differences_round_trip_and_always_give_masses_in_kinematic_order():
    events = _masses(2000, 1)
    learned = flow_features(MASSES, ["masses"])
    assert learned == ["m_jj", "dm_jjj", "m_lv", "dm_jlv", "m_bb", "dm_wbb", "dm_wwbb"]
    with_d = with_differences(events, ["masses"])
    assert (feature_matrix(with_d, list(MASS_DIFFERENCES)) >= 0).all()
    back = from_differences(ak.zip({f: with_d[f] for f in learned}))
    np.testing.assert_allclose(feature_matrix(back, MASSES), feature_matrix(events, MASSES), rtol=1e-12)
    # any non-negative differences, whatever the subsystem masses, put the masses back in order
    rng = np.random.default_rng(2)
    arbitrary = ak.zip({f: rng.exponential(50.0, 500) for f in learned})
    m = dict(zip(MASSES, feature_matrix(from_differences(arbitrary), MASSES).T, strict=True))
    assert (m["m_jjj"] >= m["m_jj"]).all() and (m["m_jlv"] >= m["m_lv"]).all()
    assert (m["m_wbb"] >= np.maximum(m["m_bb"], m["m_jlv"])).all()
    assert (m["m_wwbb"] >= np.maximum(m["m_wbb"], m["m_jjj"])).all()
    assert flow_features(MASSES) == MASSES
    with pytest.raises(InputError, match=r"needs \['m_jj'\]"):
        flow_features(["m_jjj", "m_bb"], ["masses"])
    with pytest.raises(InputError, match="replace none of"):
        flow_features(["pt", "eta"], ["masses"])
    with pytest.raises(InputError, match="unknown difference sets"):
        paper_b_candidates(differences=["angles"])


def test_jet_pt_differences_put_the_jets_back_in_p_t_order():
    rng = np.random.default_rng(5)
    pts = -np.sort(-(25.0 + rng.exponential(40.0, (1000, 4))), axis=1)
    events = ak.zip({f"jet{i}_pt": pts[:, i - 1] for i in range(1, 5)} | {"jet1_eta": rng.normal(size=1000)})
    features = ["jet1_pt", "jet1_eta", "jet2_pt", "jet3_pt", "jet4_pt"]
    learned = flow_features(features, ["jet-pt"])
    assert learned == ["dpt_jet1", "jet1_eta", "dpt_jet2", "dpt_jet3", "jet4_pt"]
    with_d = with_differences(events, ["jet-pt"])
    assert (feature_matrix(with_d, list(JET_PT_DIFFERENCES)) >= 0).all()
    back = from_differences(ak.zip({f: with_d[f] for f in learned}))
    np.testing.assert_allclose(feature_matrix(back, features), feature_matrix(events, features), rtol=1e-12)
    arbitrary = ak.zip({f: rng.exponential(30.0, 300) for f in learned})
    out = feature_matrix(from_differences(arbitrary), [f"jet{i}_pt" for i in range(1, 5)])
    assert (np.diff(out, axis=1) <= 0).all()


def test_a_mass_difference_candidate_learns_the_differences_and_generates_the_masses():
    train, select = _masses(3000, 3), _masses(1500, 4)
    cands = paper_b_candidates(
        families=["maf"], preprocessings=["gauss-rank"], blocks=2, hidden=16, differences=["masses"]
    )
    assert [c.name for c in cands] == ["maf/gauss-rank/masses"]
    rows, models = compare_models(
        train,
        select,
        cands,
        features=MASSES,
        training={"epochs": 3, "batch_size": 256},
        n_permutations=19,
        progress=False,
    )
    model = models["maf/gauss-rank/masses"]
    assert model.targets == flow_features(MASSES, ["masses"])
    assert rows[0].failure is None and np.isfinite(rows[0].nll) and set(rows[0].w1_ratio_by_feature) == set(MASSES)
    g = generate(model, 2000, seed=1)
    np.testing.assert_allclose(g.m_jjj - g.m_jj, g.dm_jjj, atol=1e-9)
    np.testing.assert_allclose(g.m_wwbb - np.maximum(g.m_wbb, g.m_jjj), g.dm_wwbb, atol=1e-9)


def test_learning_curve_trains_on_nested_subsamples_and_scores_on_the_holdout():
    train, holdout = _events(3_000, 0), _events(1_500, 1)
    (cand,) = paper_b_candidates(families=["maf"], preprocessings=["gauss-rank"], blocks=2, hidden=16)
    rows = learning_curve(
        train,
        holdout,
        cand,
        [150, 3_000],
        features=["pt", "eta", "m"],
        training={"epochs": 8, "batch_size": 128},
        n_permutations=19,
        progress=False,
    )
    assert [r.extra["n_train"] for r in rows] == [150, 3_000]
    assert all(np.isfinite(r.auc) and r.nll_excluded == 0 for r in rows)
    # twenty times the training events describe the held-out events better
    assert rows[1].nll < rows[0].nll - 0.1
    assert rows[1].auc < rows[0].auc
    with pytest.raises(InputError, match="exceeds the 3000 training events"):
        learning_curve(train, holdout, cand, [100, 5_000], features=["pt", "eta", "m"])
    with pytest.raises(InputError, match="increasing"):
        learning_curve(train, holdout, cand, [200, 100], features=["pt", "eta", "m"])


def test_auc_power_law_recovers_an_exact_curve_and_inverts_it():
    n = np.array([1e4, 2e4, 4e4, 8e4])
    auc = 0.5 + 0.09 * (n / 1e4) ** -0.4
    ci = np.column_stack([auc - 0.003, auc + 0.003])
    law = fit_auc_power_law(n, auc, ci)
    assert isinstance(law, AucPowerLaw)
    assert law.amplitude == pytest.approx(0.09, rel=1e-9)
    assert law.exponent == pytest.approx(0.4, rel=1e-9)
    assert law.chi2 == pytest.approx(0.0, abs=1e-12) and law.ndf == 2
    n_target = law.n_for(0.52)
    assert n_target == pytest.approx(1e4 * (0.09 / 0.02) ** (1 / 0.4), rel=1e-9)
    assert law.auc(n_target) == pytest.approx(0.52)
    lo, hi = law.n_for_band(0.52)
    assert lo < n_target < hi
    # a steeper curve gets there sooner; a flat one never
    assert fit_auc_power_law(n, 0.5 + 0.09 * (n / 1e4) ** -0.8, ci).n_for(0.52) < n_target
    assert fit_auc_power_law(n, np.full(4, 0.55), ci).n_for(0.52) == np.inf


def test_auc_power_law_weights_points_by_their_intervals():
    n = np.array([1e4, 2e4, 4e4])
    auc = 0.5 + 0.08 * (n / 1e4) ** -0.5
    auc_off = auc.copy()
    auc_off[0] += 0.01  # one point off the curve
    narrow, wide = np.array([0.001, 0.001, 0.001]), np.array([0.05, 0.001, 0.001])
    off_trusted = fit_auc_power_law(n, auc_off, np.column_stack([auc_off - narrow, auc_off + narrow]))
    off_doubted = fit_auc_power_law(n, auc_off, np.column_stack([auc_off - wide, auc_off + wide]))
    assert abs(off_doubted.exponent - 0.5) < abs(off_trusted.exponent - 0.5)
    assert off_trusted.chi2 > 10  # the covariance is scaled up by chi2/ndf
    assert off_trusted.exponent_error > 0.01
    with pytest.raises(InputError, match=r"at or below 0\.5"):
        fit_auc_power_law(n, [0.55, 0.5, 0.52], np.zeros((3, 2)))
    with pytest.raises(InputError, match="at least two"):
        fit_auc_power_law([1e4], [0.55], [(0.54, 0.56)])
