"""Latent-space refinement (mcsurrogate.laser): unweighted events from a surrogate and its reweighting."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.refinement import Reweighting, fit_reweighting
from mcsurrogate.surrogate import Surrogate

FEATURES = ["u", "v"]
SHIFT = 0.3  # the reference's shift of u, in units of its width (10 GeV)


def _events(rng: np.random.Generator, n: int, shift: float) -> ak.Array:
    z = rng.standard_normal((n, 2))
    return ak.zip({"u": 50 + 10 * (z[:, 0] + shift), "v": 5 * z[:, 1]})


@pytest.fixture(scope="module")
def toy() -> tuple[Surrogate, Reweighting, ak.Array]:
    """A surrogate trained briefly on N(0, 1)-like events; its reweighting against a reference shifted in u."""
    rng = np.random.default_rng(0)
    train, reference = _events(rng, 5000, 0.0), _events(rng, 5000, SHIFT)
    fast = {"epochs": 2, "batch_size": 256, "patience": None, "device": "cpu", "seed": 0}
    model = Surrogate(FEATURES, flow={"model": "maf", "blocks": 1, "hidden": 8}, training=fast)
    model.fit(train, progress=False)
    generated = model.sample(5000, seed=1, progress=False)
    rw = fit_reweighting(reference, generated, FEATURES, folds=2, learning_rate=0.2, max_iter=100, seed=1)
    return model, rw, reference


SETTINGS = {"chains": 32, "warmup": 100, "thin": 1, "distill_events": 5000, "distill_epochs": 20}


def test_refined_events_move_to_the_reference_like_the_weighted_ones(toy) -> None:
    model, rw, reference = toy
    refined = rw.refine(model, 4000, seed=3, **SETTINGS)
    assert len(refined.events) == 4000 and set(FEATURES) <= set(refined.events.fields)
    fresh = model.sample(20000, seed=2, progress=False)
    w = rw.weights(fresh)
    u_fresh = ak.to_numpy(fresh.u)
    weighted = np.average(u_fresh, weights=w)
    plain, target = u_fresh.mean(), float(ak.mean(reference.u))
    u = ak.to_numpy(refined.events.u)
    d = refined.hmc
    # statistical errors: the refined mean at its HMC effective size (never more than its count), the weighted
    # mean at its Kish size
    err_refined = u.std() / np.sqrt(min(d.ess[0], len(u)))
    err_weighted = np.sqrt(np.average((u_fresh - weighted) ** 2, weights=w) / (w.sum() ** 2 / (w**2).sum()))
    assert abs(weighted - plain) > 2.0  # the reweighting moves u by a good part of the 3 GeV shift
    assert abs(u.mean() - weighted) < 4 * np.hypot(err_refined, err_weighted), (u.mean(), weighted, plain, target)
    assert abs(u.mean() - target) < 0.5 * abs(plain - target)
    assert d.rhat_max < 1.05 and d.divergences == 0 and 0.5 < d.acceptance_rate < 0.98
    a = refined.agreement
    assert a.correlation > 0.8 and abs(a.kish_efficiency_mlp - a.kish_efficiency_trees) < 0.1
    json.dumps(refined.to_dict(), allow_nan=False)


def test_refinement_is_reproducible_by_seed(toy) -> None:
    model, rw, _ = toy
    small = {**SETTINGS, "warmup": 20, "thin": 3, "distill_events": 1000, "distill_epochs": 2}
    a = rw.refine(model, 200, seed=5, **small).events
    b = rw.refine(model, 200, seed=5, **small).events
    c = rw.refine(model, 200, seed=6, **small).events
    refined = rw.refine(model, 200, seed=5, **small)
    assert refined.hmc.draws == 3 * 7  # 200 events from 32 chains: 7 kept draws each, every third
    # the chains' mixing in the trees' weight itself (capped like any ESS at draws · chains · log10 of it)
    assert refined.ess_log_weight is not None and 0 < refined.ess_log_weight <= 7 * 32 * np.log10(7 * 32)
    assert refined.to_dict()["ess_log_weight"] == refined.ess_log_weight
    np.testing.assert_array_equal(ak.to_numpy(a.u), ak.to_numpy(b.u))
    assert not np.array_equal(ak.to_numpy(a.u), ak.to_numpy(c.u))


def test_refinement_refuses_what_it_cannot_refine(toy, small_events) -> None:
    from mcsurrogate.laser import refine

    model, rw, reference = toy
    other = fit_reweighting(
        ak.zip({"v": reference.v, "u": reference.u}),
        ak.zip({"v": reference.v, "u": reference.u}),
        ["v", "u"],
        folds=2,
        max_iter=2,
    )
    with pytest.raises(InputError, match=r"fitted on the features \['v', 'u'\]"):
        refine(other, model, 10)
    with pytest.raises(InputError, match="n must"):
        refine(rw, model, 0)
    with pytest.raises(InputError, match="unconditional: pass n, not conditions"):
        refine(rw, model, 10, conditions=np.zeros((10, 1)))
    with pytest.raises(InputError, match="must be a Surrogate"):
        refine(rw, "model", 10)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def conditional_toy() -> tuple[Surrogate, Reweighting]:
    """A conditional surrogate of u given m ∈ [0, 1], trained on events without the reference's shift of u by
    6 GeV · m; its reweighting against that reference (fitted on targets then conditions, as
    fit_surrogate_reweighting does)."""
    rng = np.random.default_rng(0)

    def events(n: int, shift: float) -> ak.Array:
        m = rng.uniform(0, 1, n)
        return ak.zip({"u": 50 + 10 * (rng.standard_normal(n) + shift * m), "m": m})

    train, reference = events(6000, 0.0), events(6000, 0.6)
    fast = {"epochs": 2, "batch_size": 256, "patience": None, "device": "cpu", "seed": 0}
    model = Surrogate(["u"], ["m"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=fast)
    model.fit(train, progress=False)
    generated = model.sample(conditions=reference[["m"]], seed=1, progress=False)
    rw = fit_reweighting(reference, generated, ["u", "m"], folds=2, learning_rate=0.2, max_iter=100, seed=1)
    return model, rw


COND_SETTINGS = {"chains": 256, "warmup": 100, "thin": 20, "distill_events": 5000, "distill_epochs": 20}


def test_a_conditional_surrogate_is_refined_one_chain_per_condition_row(conditional_toy) -> None:
    model, rw = conditional_toy
    m = np.random.default_rng(9).uniform(0, 1, 2001)  # an odd count: the last batch holds one row
    refined = rw.refine(model, conditions={"m": m}, seed=3, **COND_SETTINGS)
    np.testing.assert_array_equal(ak.to_numpy(refined.events.m), m)  # the rows' order is kept
    u = ak.to_numpy(refined.events.u)
    plain = model.sample(conditions={"m": m}, seed=5, progress=False)
    up, w = ak.to_numpy(plain.u), rw.weights(plain)
    for low, high in [(0.0, 0.5), (0.5, 1.0)]:
        s = (m >= low) & (m < high)
        weighted = np.average(up[s], weights=w[s])
        err_weighted = np.sqrt(
            np.average((up[s] - weighted) ** 2, weights=w[s]) / (w[s].sum() ** 2 / (w[s] ** 2).sum())
        )
        err_refined = u[s].std() / np.sqrt(s.sum())
        assert abs(u[s].mean() - weighted) < 4 * np.hypot(err_refined, err_weighted), (low, u[s].mean(), weighted)
    high = m >= 0.5  # where the reference's shift is large, the refined events move most of the way (6 GeV · 0.75)
    assert u[high].mean() - up[high].mean() > 2.5
    trace = refined.log_weight_trace
    assert trace is not None and len(trace) == 20 and trace[-1] > trace[0]  # from the flow's density to the refined
    d = refined.hmc
    assert d.chains == 2001 and d.divergences == 0 and 0.5 < d.acceptance_rate < 0.98
    json.dumps(refined.to_dict(), allow_nan=False)
    # the distilled weight takes events with their conditions
    assert refined.distilled_weights(plain).shape == (2001,)
    small = {**COND_SETTINGS, "warmup": 10, "thin": 4, "distill_events": 1000, "distill_epochs": 2}
    a = rw.refine(model, conditions={"m": m[:300]}, seed=4, **small).events
    b = rw.refine(model, conditions={"m": m[:300]}, seed=4, **small).events
    np.testing.assert_array_equal(ak.to_numpy(a.u), ak.to_numpy(b.u))


def test_a_conditional_refinement_needs_its_conditions(conditional_toy) -> None:
    model, rw = conditional_toy
    with pytest.raises(InputError, match="conditional: pass conditions"):
        rw.refine(model, 10)
    with pytest.raises(InputError, match="n=10 differs from the number of condition rows"):
        rw.refine(model, 10, conditions={"m": np.zeros(3)})
    with pytest.raises(InputError, match=r"targets, then conditions"):
        fit = fit_reweighting(ak.zip({"u": np.ones(50)}), ak.zip({"u": np.ones(50)}), ["u"], folds=2, max_iter=2)
        fit.refine(model, conditions={"m": np.zeros(3)})


def test_per_row_hit_or_miss_draws_the_reweighted_conditional_density(conditional_toy) -> None:
    from mcsurrogate.workflows.refinement_study import hit_or_miss_per_row

    model, rw = conditional_toy
    m = np.random.default_rng(10).uniform(0.5, 1.0, 3000)
    kept = hit_or_miss_per_row(model, rw, m[:, None], seed=1)
    assert kept.shape == (3000, 1) and np.isfinite(kept).all()  # one event for every row
    plain = model.sample(conditions={"m": m}, seed=2, progress=False)
    up, w = ak.to_numpy(plain.u), rw.weights(plain)
    weighted = np.average(up, weights=w)
    err = np.hypot(
        kept.std() / np.sqrt(3000), np.sqrt(np.average((up - weighted) ** 2, weights=w) * (w**2).sum()) / w.sum()
    )
    assert abs(kept[:, 0].mean() - weighted) < 4 * err, (kept.mean(), weighted, up.mean())
    assert kept[:, 0].mean() - up.mean() > 2.0  # the weights moved the events (reference: +4.5 GeV at these m)
    np.testing.assert_array_equal(kept, hit_or_miss_per_row(model, rw, m[:, None], seed=1))


def test_refinement_candidates_and_their_comparison(toy, conditional_toy) -> None:
    from mcsurrogate.workflows.refinement_study import compare_candidates, refinement_candidates

    fast = {"chains": 32, "warmup": 20, "thin": 4, "distill_events": 1000, "distill_epochs": 2}
    model, rw, reference = toy
    cands, refined, costs = refinement_candidates(model, rw, n=400, seed=1, refine=fast)
    assert list(cands) == ["flow", "reweighted", "reweighted_distilled", "reweighted_unweighted", "refined"]
    assert all(c.events.shape == (400, 2) for c in cands.values()) and len(refined.events) == 400
    assert cands["reweighted"].weights is not None and 0 < cands["reweighted"].kish_efficiency < 1
    assert cands["flow"].kish_efficiency == 1.0 and costs["refined_events_per_second"] > 0
    ref = np.column_stack([ak.to_numpy(reference.u), ak.to_numpy(reference.v)])[:400]
    rows = compare_candidates(ref, {"flow": cands["flow"]}, FEATURES, n_bootstrap=5, w1_features=["u"])
    assert set(rows["flow"]["w1_ratio"]["by_feature"]) == {"u"} and 0 < rows["flow"]["c2st"]["auc"] < 1
    with pytest.raises(InputError, match=r"w1_features \['x'\]"):
        compare_candidates(ref, {"flow": cands["flow"]}, FEATURES, w1_features=["x"])
    cmodel, crw = conditional_toy
    m = np.random.default_rng(3).uniform(0, 1, (300, 1))
    cands, _, _ = refinement_candidates(cmodel, crw, conditions=m, seed=1, refine=fast)
    for c in cands.values():  # targets then the conditions, row for row
        assert c.events.shape == (300, 2)
        np.testing.assert_array_equal(c.events[:, 1], m[:, 0])
    with pytest.raises(InputError, match="take conditions"):
        refinement_candidates(cmodel, crw, n=300)


def test_tail_fractions_count_below_the_reference_core() -> None:
    from mcsurrogate.workflows.refinement_study import Candidate, tail_fractions

    rng = np.random.default_rng(0)
    reference = rng.standard_normal((200_000, 1))
    fatter = np.concatenate([rng.standard_normal(180_000), rng.normal(-3, 3, 20_000)])[:, None]
    cut = tail_fractions(reference, {}, ["x"])["columns"]["x"]["cut"]
    half = np.where(fatter[:, 0] < cut, 0.5, 1.0)  # weights halving the events below the cut
    t = tail_fractions(
        reference, {"same": Candidate(reference), "fat": Candidate(fatter), "w": Candidate(fatter, half)}, ["x"]
    )
    col = t["columns"]["x"]
    assert abs(col["reference"]["fraction"] - 0.0228) < 0.002  # Φ(−2) of a Gaussian, its core width ≈ its SD
    assert col["same"]["ratio_to_reference"] == 1.0
    assert col["fat"]["ratio_to_reference"] > 2  # 10 % of the events in a wide, shifted tail
    f = col["fat"]["fraction"]
    assert abs(col["w"]["fraction"] - 0.5 * f / (1 - 0.5 * f)) < 1e-12


def test_a_candidate_equal_to_the_reference_has_no_spurious_signal() -> None:
    from mcsurrogate.workflows.refinement_study import spurious_signal

    rng = np.random.default_rng(1)
    data, model = rng.exponential(100.0, 20_000), rng.exponential(100.0, 200_000)
    out = spurious_signal(
        data,
        {"model": model, "with_signal": np.concatenate([model, rng.normal(125, 15, 3000)])},
        np.linspace(0, 500, 26),
        mass=125.0,
        sigma=15.0,
        excess=0.05,
    )
    assert abs(out["model"]["mu"]) < 3 * out["model"]["sigma"]
    assert out["with_signal"]["mu"] < -3 * out["with_signal"]["sigma"]  # a bump in the model: a negative signal
    assert out["setup"]["bins"] == 25


def test_trees_that_learned_only_noise_are_flagged(toy) -> None:
    # reference and "generated" are both the surrogate's own events: whatever the trees learned is noise, which a
    # smooth MLP cannot follow; refine says so instead of presenting the refined events as corrected
    model, _, _ = toy
    a, b = model.sample(3000, seed=7, progress=False), model.sample(3000, seed=8, progress=False)
    noise = fit_reweighting(a, b, FEATURES, folds=2, learning_rate=0.5, max_iter=100, seed=1)
    with pytest.warns(UserWarning, match="follows the reweighting's trees poorly"):
        result = noise.refine(model, 100, seed=1, chains=8, warmup=10, distill_events=1000, distill_epochs=5)
    assert result.agreement.correlation < 0.5


def test_a_distilled_surrogate_is_refined_in_its_noise_space(toy) -> None:
    model, rw, reference = toy
    student = model.distill(config={"hidden": 32, "layers": 2, "pairs": 20000, "epochs": 5, "batch_size": 512})
    refined = rw.refine(student, 2000, seed=4, **SETTINGS)
    plain = float(np.mean(student.sample_array(20000, seed=2)[:, 0]))
    u = ak.to_numpy(refined.events.u)
    target = float(ak.mean(reference.u))
    assert abs(u.mean() - target) < 0.5 * abs(plain - target), (u.mean(), plain, target)
    assert refined.hmc.rhat_max < 1.05


# the signal template of bench_laser.py's spurious-signal figures (mcsurrogate.stats.templates.gaussian_template)


def test_gaussian_template_holds_the_normal_bin_integrals() -> None:
    from mcsurrogate.stats.templates import gaussian_template

    # bins at 125 GeV ± 1 and 2 widths of 15 GeV: the standard normal's 34.13 % and 13.59 % per side
    h = gaussian_template([95.0, 110.0, 125.0, 140.0, 155.0], mean=125.0, sigma=15.0, total=200.0)
    np.testing.assert_allclose(h.values(), 200 * np.array([0.135905, 0.341345, 0.341345, 0.135905]), rtol=1e-5)
    np.testing.assert_array_equal(h.variances(), 0.0)  # an analytic shape carries no template statistics
    # a Gaussian half outside the axis keeps only what falls in it (total counts the whole Gaussian)
    edge = gaussian_template([0.0, 100.0, 500.0], mean=0.0, sigma=20.0, total=10.0)
    np.testing.assert_allclose(edge.values().sum(), 5.0, rtol=1e-12)
    # the same yield as a filled sample of a million draws, per bin within its Poisson error
    rng = np.random.default_rng(1)
    draws = rng.normal(125.0, 15.0, 1_000_000)
    filled = np.histogram(draws, np.linspace(0.0, 500.0, 26))[0] / 1_000_000
    exact = gaussian_template(np.linspace(0.0, 500.0, 26), mean=125.0, sigma=15.0, total=1.0).values()
    assert np.all(np.abs(filled - exact) < 5 * np.sqrt(exact / 1_000_000) + 1e-12)
    for kw, match in (
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"total": -1.0}, "total"),
        ({"mean": float("inf")}, "mean"),
    ):
        with pytest.raises(InputError, match=match):
            gaussian_template([0.0, 1.0], **{"mean": 0.5, "sigma": 1.0, "total": 1.0, **kw})
    with pytest.raises(InputError, match="bin edges"):
        gaussian_template([1.0, 0.0], mean=0.5, sigma=1.0, total=1.0)


def test_a_gaussian_signal_injected_into_the_data_is_fitted_back() -> None:
    # the spurious-signal fit of the benchmark: background model = the MC itself, data = MC + 1 × the signal
    from mcsurrogate.stats import fill_template, measure_spurious_signal
    from mcsurrogate.stats.templates import gaussian_template

    edges = np.linspace(0.0, 500.0, 26)
    mc = fill_template(np.random.default_rng(2).exponential(150.0, 20000), bins=edges)
    signal = gaussian_template(edges, mean=125.0, sigma=15.0, total=400.0)
    data = mc.copy()
    data.view().value = mc.values() + signal.values()
    none = measure_spurious_signal(signal, mc, mc)
    one = measure_spurious_signal(signal, mc, data)
    assert abs(none.mu) < 0.02 and abs(one.mu - 1.0) < 0.05, (none, one)
    assert one.z_signed > 2 and one.signal_yield == pytest.approx(signal.values().sum())


def test_the_higgs_refinement_study_runs_every_step_on_a_small_sample() -> None:
    from mcsurrogate.workflows.refinement_study import higgs_refinement_study

    rng = np.random.default_rng(5)

    def records(n: int) -> ak.Array:
        m_bb = rng.gamma(4.0, 30.0, n) + 10.0
        return ak.zip({"m_bb": m_bb, "pt": 0.5 * m_bb + rng.gamma(2.0, 10.0, n)})

    train, held = records(2000), records(300)
    held_out = np.column_stack([ak.to_numpy(held.m_bb), ak.to_numpy(held.pt)])
    fast = {"chains": 16, "warmup": 10, "thin": 2, "distill_events": 1000, "distill_epochs": 1}
    study = higgs_refinement_study(
        train,
        held_out,
        features=["m_bb", "pt"],
        flow={"model": "maf", "blocks": 1, "hidden": 8},
        epochs=2,
        refine=fast,
        floor=held_out[:100],
        seed=3,
    )
    assert list(study.rows) == [*study.candidates] and "mc_floor" in study.rows
    assert all(len(c.events) == 300 for k, c in study.candidates.items() if k != "mc_floor")
    assert set(study.spurious) == {"setup", *study.candidates}
    assert study.spurious["setup"]["signal_mass"] == 125.0 and study.spurious["setup"]["signal_sigma"] == 15.0
    assert set(study.seconds) == {"train", "reweighting_fit", "candidates", "compare"}
    with pytest.raises(InputError, match="must include 'm_bb'"):
        higgs_refinement_study(train, held_out[:, 1:], features=["pt"])
    with pytest.raises(InputError, match=r"held_out must be \(n, 2\)"):
        higgs_refinement_study(train, held_out[:, :1], features=["m_bb", "pt"])
