"""Training on event weights (issue 29): the weighted NLL, weighted preprocessing, weights kept with their events
through the split, refusals, bootstrap replicas, negative weights and the response surrogate."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from scipy.special import ndtri

from mcsurrogate import Surrogate
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import InputError
from mcsurrogate.event_weights import cell_resample, poisson_bootstrap
from mcsurrogate.flows import FlowConfig, build_flow
from mcsurrogate.preprocessing import GaussRank, MinMaxLogit, Preprocessor, Standardize, make_transform
from mcsurrogate.response import SmearingConfig, smear_photons, train_response
from mcsurrogate.training import TrainConfig, split_indices, train_flow, wasserstein_1d

TINY = {"model": "maf", "blocks": 1, "hidden": 8}
QUICK = {"epochs": 2, "device": "cpu", "patience": None}


def _events(n: int, seed: int = 0) -> ak.Array:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=n)
    return ak.zip({"x": x, "y": 0.5 * x + y, "w": rng.integers(1, 4, n).astype(np.float64)})


# -- the objective ------------------------------------------------------------------------------------------------
def test_weighted_nll_equals_the_unweighted_nll_of_the_sample_with_repeated_rows() -> None:
    """Full-batch training from the same initial flow: integer weights and the expanded sample give the same losses
    and the same validation NLLs, epoch after epoch (the weighted NLL is normalised by the sum of weights)."""
    rng = np.random.default_rng(1)
    x, xv = rng.normal(size=(300, 2)), rng.normal(size=(200, 2))
    w, wv = rng.integers(1, 5, 300).astype(float), rng.integers(1, 5, 200).astype(float)
    runs = []
    for weighted in (True, False):
        torch.manual_seed(0)
        flow = build_flow(FlowConfig(model="maf", blocks=2, hidden=16), 2, None)
        xt, xval = (x, xv) if weighted else (np.repeat(x, w.astype(int), axis=0), np.repeat(xv, wv.astype(int), axis=0))
        cfg = TrainConfig(epochs=4, batch_size=len(xt), lr=1e-2, device="cpu", patience=None, clip_grad_norm=None)
        res = train_flow(
            flow, xt, None, xval, None, cfg, progress=False, **({"w_train": w, "w_val": wv} if weighted else {})
        )
        runs.append(res)
    weighted_run, expanded_run = runs
    assert weighted_run.weighted and not expanded_run.weighted
    for a, b in zip(weighted_run.history, expanded_run.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
        assert a.val_nll == pytest.approx(b.val_nll, rel=1e-5)
    # the weights act: the same rows unweighted train to another loss
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model="maf", blocks=2, hidden=16), 2, None)
    cfg = TrainConfig(epochs=1, batch_size=300, lr=1e-2, device="cpu", patience=None, clip_grad_norm=None)
    plain = train_flow(flow, x, None, xv, None, cfg, progress=False)
    assert plain.history[0].val_nll != pytest.approx(weighted_run.history[0].val_nll, rel=1e-5)


def test_weighted_training_learns_the_weighted_density() -> None:
    """N(0, 1) events weighted by N(0.8, 1)/N(0, 1): the flow generates N(0.8, 1) (unweighted events)."""
    rng = np.random.default_rng(2)
    n, mu = 4000, 0.8
    x = rng.normal(size=(n, 2))
    events = ak.zip({"a": x[:, 0], "b": x[:, 1], "w": np.exp(mu * x[:, 0] - mu**2 / 2)})
    model = Surrogate(
        ["a", "b"], flow={"model": "maf", "blocks": 2, "hidden": 16}, training=QUICK | {"epochs": 12, "lr": 3e-3}
    )
    model.fit(events, weights="w", progress=False)
    gen = model.sample(10000, seed=1)
    assert gen.fields == ["a", "b"]  # no weight column: generated events are unweighted
    assert float(ak.mean(gen.a)) == pytest.approx(mu, abs=0.1)
    assert float(ak.mean(gen.b)) == pytest.approx(0.0, abs=0.1)
    assert float(np.std(gen.a.to_numpy())) == pytest.approx(1.0, abs=0.1)
    # metrics.json: the training split's Kish effective size, well below its event count for these weights
    info = model.metrics["weights"]
    assert info["source"] == "w" and info["n_train"] == 3200
    assert 0.4 < info["kish_efficiency"] < 0.7  # exp(−μ²) = 0.53 expected
    assert "Kish effective size" in model.info()["training_size"]


# -- preprocessing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("atom", [False, True], ids=["continuous", "with-atom"])
def test_weighted_gauss_rank_equals_the_unweighted_one_on_the_expanded_sample(atom: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.exponential(30.0, 3000) + 20.0
    if atom:
        x[rng.random(3000) < 0.3] = 20.0  # a floor: 30 % of the events on one value
    w = rng.integers(1, 4, 3000)
    w[0] = 1
    weighted = GaussRank(event_knots=0).fit(x, w.astype(float))  # knots by weighted probability only
    expanded = GaussRank().fit(np.repeat(x, w))
    np.testing.assert_allclose(weighted.knots, expanded.knots, rtol=1e-12)
    np.testing.assert_allclose(weighted.probs, expanded.probs, rtol=1e-12, atol=1e-15)
    assert len(weighted._atoms()[0]) == int(atom)
    # the weights act: the rows unweighted give another CDF
    plain = GaussRank().fit(x)
    assert not np.allclose(np.interp(50.0, plain.knots, plain.probs), np.interp(50.0, weighted.knots, weighted.probs))
    # and the transform stays exactly invertible
    np.testing.assert_allclose(weighted.inverse(weighted.forward(x)), x, rtol=1e-9)


def test_event_knots_resolve_the_tail_of_a_biased_sample() -> None:
    """Exp(1) sampled as Exp(1/2) with weights 2 exp(−x/2), the way a p_T-biased generator over-samples its tail: the
    knots by weighted probability leave the top 10⁻³ of probability with one segment over the sample's far tail; the
    event knots put its quantiles where Exp(1)'s are (−log(1 − q))."""
    rng = np.random.default_rng(7)
    x = rng.exponential(2.0, 30_000)
    w = 2.0 * np.exp(-0.5 * x)
    q = np.array([1 - 1e-3, 1 - 1e-4, 1 - 1e-5])
    exact = -np.log1p(-q)
    by_probability = GaussRank(event_knots=0).fit(x, w)
    by_events = GaussRank().fit(x, w)  # "auto": n_quantiles event knots, the weights vary
    assert len(by_events.knots) > len(by_probability.knots) == 1000
    assert np.abs(by_events.inverse(ndtri(q)) - exact).max() < 0.1
    assert by_probability.inverse(ndtri(q[1])) > exact[1] + 3.0  # 9.2 expected: far out without the event knots
    # unweighted (or constant weights): the two grids coincide, nothing is added
    assert len(GaussRank().fit(x).knots) == len(GaussRank().fit(x, np.full(len(x), 0.3)).knots) == 1000
    # the setting is saved with the transform
    again = make_transform(GaussRank(event_knots=50).fit(x, w).to_dict())
    assert isinstance(again, GaussRank) and again.event_knots == 50
    np.testing.assert_array_equal(again.forward(x[:100]), GaussRank(event_knots=50).fit(x, w).forward(x[:100]))
    with pytest.raises(InputError, match="event_knots"):
        GaussRank(event_knots=-1)


def test_weighted_moments_and_ranges() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 2.0, 2000)
    w = rng.integers(1, 6, 2000)
    s, e = Standardize().fit(x, w.astype(float)), Standardize().fit(np.repeat(x, w))
    assert s.mean == pytest.approx(e.mean, rel=1e-12) and s.std == pytest.approx(e.std, rel=1e-12)
    # a range is the support: weights do not change it, zero-weight events included
    w0 = w.astype(float)
    w0[np.argmax(x)] = 0.0
    assert MinMaxLogit().fit(x, w0).xmax == MinMaxLogit().fit(x).xmax
    # a Preprocessor passes the weights to every column's chain and checks them
    p = Preprocessor(["a"], "gauss-rank").fit(x[:, None], w.astype(float))
    fitted = p.chains["a"].transforms[0]
    np.testing.assert_allclose(fitted.knots, GaussRank().fit(x, w.astype(float)).knots, rtol=1e-12)
    assert len(fitted.knots) != len(GaussRank().fit(x).knots)  # the weights reached the column's chain
    with pytest.raises(InputError, match=r"weights of the preprocessing fit sum to -"):
        Preprocessor(["a"], "standardize").fit(x[:, None], -np.ones(2000))
    with pytest.raises(InputError, match=r"weights of the preprocessing fit has shape \(3,\)"):
        Preprocessor(["a"], "standardize").fit(x[:, None], np.ones(3))


def test_signed_weights_in_the_preprocessing() -> None:
    """A positive density sampled with signed weights: 1.5 N(0, 1) − 0.5 N(0, 0.5²) from its two components."""
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(size=60000), rng.normal(0, 0.5, 20000)
    x, w = np.concatenate([pos, neg]), np.concatenate([np.ones(60000), -np.ones(20000)])
    g = GaussRank().fit(x, w)
    assert (np.diff(g.probs) >= 0).all() and (np.diff(g.knots) >= 0).all()
    # the CDF at 0 is 1/2 by symmetry; the target's variance is 1.5 − 0.5 · 0.25 = 1.375
    assert np.interp(0.0, g.knots, g.probs) == pytest.approx(0.5, abs=0.01)
    assert Standardize().fit(x, w).std == pytest.approx(np.sqrt(1.375), rel=0.02)


# -- refusals -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(600), r"weights column 'w' are all zero"),
        (np.r_[np.nan, np.ones(599)], r"weights column 'w' holds 1 NaN or infinite weights.*drop_nonfinite_weights"),
        (np.r_[np.inf, np.ones(599)], r"weights column 'w' holds 1 NaN"),
        (np.r_[np.ones(300), -2 * np.ones(300)], r"weights column 'w' sum to -300"),
    ],
    ids=["zeros", "nan", "inf", "negative-sum"],
)
def test_bad_weight_columns_are_refused_naming_the_column(values: np.ndarray, message: str) -> None:
    events = ak.with_field(_events(600), values, "w")
    with pytest.raises(InputError, match=message):
        Surrogate(["x", "y"], flow=TINY, training=QUICK).fit(events, weights="w", progress=False)


def test_weight_arguments_are_checked() -> None:
    events = _events(600)
    model = Surrogate(["x", "y"], flow=TINY, training=QUICK)
    with pytest.raises(
        InputError, match=r"weights column 'wt' is not a field of the events; they have \['x', 'y', 'w'\]"
    ):
        model.fit(events, weights="wt", progress=False)
    with pytest.raises(InputError, match=r"weights has shape \(5,\), expected \(600,\)"):
        model.fit(events, weights=np.ones(5), progress=False)
    with pytest.raises(InputError, match=r"weights must hold numbers"):
        model.fit(events, weights=np.array(["a"] * 600), progress=False)
    with pytest.raises(InputError, match=r"weights column 'flag' must hold one number per event"):
        model.fit(ak.with_field(events, events.x > 0, "flag"), weights="flag", progress=False)
    with pytest.raises(InputError, match=r"negative_weights must be one of \['signed', 'cell-resampling'\]"):
        model.fit(events, weights="w", negative_weights="drop", progress=False)
    with pytest.raises(InputError, match=r"bootstrap_seed must be a non-negative integer"):
        model.fit(events, bootstrap_seed=-1, progress=False)
    with pytest.raises(InputError, match=r"validation events lack the weights column 'w'"):
        model.fit(events, weights="w", validation=events[["x", "y"]], progress=False)
    # the training split alone can sum to ≤ 0 although the sample does not
    split = split_indices(600, (0.8, 0.1, 0.1), 0)
    w = np.full(600, 10.0)
    w[split.train] = -0.1
    with pytest.raises(InputError, match=r"the training split's weights sum to -48 \(≤ 0\)"):
        model.fit(events, weights=w, progress=False)


def test_nonfinite_weights_are_dropped_when_asked_and_counted() -> None:
    events = _events(600)
    w = events.w.to_numpy().copy()
    w[[3, 10, 11]] = [np.nan, np.inf, -np.inf]
    model = Surrogate(["x", "y"], flow=TINY, training=QUICK)
    model.fit(ak.with_field(events, w, "w"), weights="w", drop_nonfinite_weights=True, progress=False)
    assert model.metrics["data"]["dropped_nonfinite_weights"] == 3
    assert model.metrics["weights"]["dropped_nonfinite"] == 3
    assert sum(model.metrics["split"].values()) == 597


# -- the split ----------------------------------------------------------------------------------------------------
def test_the_split_keeps_each_weight_with_its_event() -> None:
    events = _events(1000)
    w = 1.0 + (events.x.to_numpy() > 0)  # a function of the event
    events = ak.with_field(events, w, "w")
    model = Surrogate(["x", "y"], flow=TINY, training=QUICK)
    parts = model.split(events, weights="w")
    for part in parts.values():
        np.testing.assert_array_equal(part.w.to_numpy(), 1.0 + (part.x.to_numpy() > 0))
    arr = model.split(events, weights=w)
    assert all("weight" in part.fields for part in arr.values())
    # fit's training weights are the training part's: its sum of weights is the metrics' one
    model.fit(events, weights="w", progress=False)
    assert model.metrics["weights"]["sum_train"] == pytest.approx(float(ak.sum(parts["train"].w)))


def test_explicit_validation_events_carry_their_own_weights() -> None:
    events, validation = _events(800, seed=1), _events(300, seed=2)
    model = Surrogate(["x", "y"], flow=TINY, training=QUICK | {"epochs": 3})
    model.fit(events, weights="w", validation=validation, progress=False)
    assert model.metrics["weights"]["source"] == "w" and model.metrics["split"]["validation"] == 300
    # the selected epoch's validation NLL is the weighted NLL of the validation events under the kept flow
    wv = np.random.default_rng(3).uniform(0.1, 3.0, 300)
    model.fit(events, validation=validation, validation_weights=wv, progress=False)
    assert model.metrics["weights"]["source"] is None and not model.result.weighted
    xv = np.column_stack([validation.x.to_numpy(), validation.y.to_numpy()])
    log_p = model._flow_log_prob(model.preprocessor.forward(xv), None)
    assert model.result.best_metric == pytest.approx(-np.sum(wv * log_p) / wv.sum(), rel=1e-5)
    assert model.result.best_metric != pytest.approx(-np.mean(log_p), rel=1e-3)
    with pytest.raises(InputError, match=r"validation_weights are the weights of validation events"):
        model.fit(events, validation_weights=wv, progress=False)


# -- bootstrap replicas -------------------------------------------------------------------------------------------
def test_bootstrap_replicas_multiply_the_weights_by_seeded_poisson_draws() -> None:
    events = _events(1000)
    model = Surrogate(["x", "y"], flow=TINY, training=QUICK)
    a = model.fit(events, weights="w", bootstrap_seed=1, progress=False).metrics["weights"]
    gen_a = model.sample(50, seed=0).x.to_numpy()
    b = model.fit(events, weights="w", bootstrap_seed=1, progress=False).metrics["weights"]
    gen_b = model.sample(50, seed=0).x.to_numpy()
    c = model.fit(events, weights="w", bootstrap_seed=2, progress=False).metrics["weights"]
    gen_c = model.sample(50, seed=0).x.to_numpy()
    train_w = model.split(events, weights="w")["train"].w.to_numpy()
    assert a == b and np.array_equal(gen_a, gen_b)
    assert a["sum_train"] == pytest.approx(float(np.sum(train_w * poisson_bootstrap(800, 1))))
    assert c["sum_train"] != a["sum_train"] and not np.array_equal(gen_a, gen_c)
    assert a["bootstrap_seed"] == 1
    draws = poisson_bootstrap(100_000, 7)
    assert draws.mean() == pytest.approx(1.0, abs=0.01) and draws.var() == pytest.approx(1.0, abs=0.02)
    # unweighted events: the replica's weights are the Poisson draws themselves
    d = model.fit(events, bootstrap_seed=1, progress=False).metrics["weights"]
    assert d["source"] is None and d["sum_train"] == float(poisson_bootstrap(800, 1).sum())


# -- negative weights ---------------------------------------------------------------------------------------------
def test_cell_resampling_keeps_the_sum_and_removes_negative_weights() -> None:
    rng = np.random.default_rng(6)
    # a positive density sampled with signed weights: 6/5 N(0, 1) − 1/5 N(0, 0.5²) in 2-D
    points = np.concatenate([rng.normal(size=(3000, 2)), rng.normal(0, 0.5, size=(500, 2))])
    w = np.concatenate([np.ones(3000), -np.ones(500)])
    res = cell_resample(points, w)
    assert (res.weights >= 0).all() and res.weights.sum() == pytest.approx(w.sum(), rel=1e-12)
    assert res.n_cells > 0 and 1 < res.mean_cell_size < 20
    # locally the weighted counts are kept: the weight inside a disc of radius 0.5 around the origin
    disc = np.hypot(points[:, 0], points[:, 1]) < 0.5
    assert res.weights[disc].sum() == pytest.approx(w[disc].sum(), rel=0.1)
    # deterministic
    assert np.array_equal(cell_resample(points, w).weights, res.weights)


def test_signed_weights_train_and_can_be_cell_resampled_first() -> None:
    rng = np.random.default_rng(7)
    pos, neg = rng.normal(size=(3000, 2)), rng.normal(0, 0.5, size=(500, 2))
    x = np.concatenate([pos, neg])
    events = ak.zip({"a": x[:, 0], "b": x[:, 1], "w": np.r_[np.ones(3000), -np.ones(500)]})
    for mode in ("signed", "cell-resampling"):
        model = Surrogate(["a", "b"], flow=TINY, training=QUICK).fit(
            events, weights="w", negative_weights=mode, progress=False
        )
        info = model.metrics["weights"]
        assert info["negative_weights"] == mode and info["n_negative"] > 0
        assert (info["cells"] is not None) == (mode == "cell-resampling")
        assert np.isfinite(model.metrics["test_nll_flow_space"])


def _signed_target(n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact samples of p = 1.2 N(0, I) − 0.2 N(0, 0.5² I) in 2-D (rejection from 1.2 N(0, I): accept with
    p / (1.2 N) = 1 − (1/6) N(0, 0.5² I) / N(0, I))."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        x = rng.normal(size=(2 * n, 2))
        r2 = np.sum(x**2, axis=1)
        out.append(x[rng.random(2 * n) < 1 - (0.2 / 1.2) / 0.25 * np.exp(-1.5 * r2)])
    return np.concatenate(out)[:n]


@pytest.mark.slow
def test_signed_weights_learn_a_known_signed_density() -> None:
    """Known answer (issue 29): p = 1.2 N(0, I) − 0.2 N(0, 0.5² I) in 2-D is positive, with a dip at the origin to
    0.4 of N(0, I)'s height. Sampled as a subtraction-style generator does (each event from one component, weight +1
    or −1: 1/7 of the events negative, Kish size 0.51 of the count), the flow trained on the signed weights as they
    are generates events a classifier cannot tell from exact samples of p (C2ST AUC ≤ 0.52), while the same events
    unweighted, or with their negative events dropped, are told apart at once."""
    from mcsurrogate.validation import c2st

    rng = np.random.default_rng(11)
    n_pos, n_neg = 30_000, 5_000
    x = np.concatenate([rng.normal(size=(n_pos, 2)), rng.normal(0.0, 0.5, size=(n_neg, 2))])
    w = np.r_[np.ones(n_pos), -np.ones(n_neg)]
    exact = _signed_target(20_000, np.random.default_rng(12))
    model = Surrogate(
        ["a", "b"],
        flow={"model": "rqs-ar", "blocks": 2, "hidden": 32, "bins": 8},
        training={"epochs": 15, "lr": 3e-3, "ema_decay": 0.998, "patience": None, "device": "cpu"},
    )
    model.fit(ak.zip({"a": x[:, 0], "b": x[:, 1], "w": w}), weights="w", progress=False)
    assert model.metrics["weights"]["negative_weights"] == "signed" and model.metrics["weights"]["n_negative"] > 0

    def auc(candidate: np.ndarray) -> float:
        return c2st(exact, candidate, n_repeats=3, n_permutations=100, n_bootstrap=0, seed=0).auc

    assert auc(model.sample_array(20_000, seed=1)) <= 0.52
    # the test can fail: the weights' sign is what makes the dip
    mixture = rng.permutation(x)[:20_000]
    assert auc(mixture) > 0.55 and auc(x[:n_pos][:20_000]) > 0.54


def test_signed_wasserstein_distance() -> None:
    rng = np.random.default_rng(8)
    u, v = rng.normal(size=500), rng.normal(0.3, 1.0, 400)
    wu = rng.uniform(0.5, 2.0, 500)
    assert wasserstein_1d(u, v, wu) == pytest.approx(wasserstein_1d(u, v, wu, np.ones(400)))
    # the signed path gives scipy's number for non-negative weights written as a signed mixture
    from scipy.stats import wasserstein_distance

    signed = wasserstein_1d(np.r_[u, u[:100]], v, np.r_[wu, -0.5 * wu[:100]])
    exact = wasserstein_distance(u, v, np.r_[0.5 * wu[:100], wu[100:]])
    assert signed == pytest.approx(exact, rel=1e-9)


# -- the response surrogate ---------------------------------------------------------------------------------------
def test_train_response_takes_a_weight_column() -> None:
    smeared = smear_photons(load_default_truth()[:3000], SmearingConfig("baseline"), seed=0)
    w = np.random.default_rng(9).uniform(0.5, 1.5, len(smeared))
    smeared = ak.with_field(smeared, w, "evw")
    model = train_response(
        smeared, "demo", flow={"blocks": 1, "hidden": 8}, training={"epochs": 1, "device": "cpu"}, weights="evw"
    )
    assert model.metrics["weights"]["source"] == "evw"
    assert model.metrics["weights"]["kish_efficiency"] < 1.0
    with pytest.raises(InputError, match=r"weights column 'nope' is not a field of the smeared events"):
        train_response(smeared, "demo", training={"epochs": 1, "device": "cpu"}, weights="nope")


# -- a weighted Pythia sample ---------------------------------------------------------------------------------------
def test_biased_pythia_sampling_writes_the_event_weight_and_its_provenance() -> None:
    pytest.importorskip("pythia8mc")
    from scipy.stats import spearmanr

    from mcsurrogate.generators.biased import generate_higgs_jet_diphoton

    biased, stats, provenance = generate_higgs_jet_diphoton(300, seed=1, bias_power=1.5, chunk_size=150)
    plain, _, plain_provenance = generate_higgs_jet_diphoton(300, seed=1, chunk_size=150)
    assert biased.fields == ["photons", "mu", "weight"] and stats.accepted == 300
    assert set(plain.weight.to_numpy()) == {1.0} and plain_provenance["kish_effective_size"] == 300
    w = biased.weight.to_numpy()
    pt_gg = (biased.photons[:, 0] + biased.photons[:, 1]).pt.to_numpy()
    # over-sampled at high p_T, and the weights compensate: they fall with the Higgs p_T
    plain_pt = (plain.photons[:, 0] + plain.photons[:, 1]).pt.to_numpy()
    assert np.mean(pt_gg > 100) > 3 * np.mean(plain_pt > 100)
    assert spearmanr(w, pt_gg).statistic < -0.5
    assert provenance["bias_power"] == 1.5 and "PhaseSpace:bias2Selection = on" in provenance["settings"]
    assert provenance["sum_weights"] == pytest.approx(w.sum())
    assert provenance["kish_effective_size"] < 0.8 * 300 and provenance["sigma_gen_mb"] > 0


def test_generate_higgs_jet_diphoton_bias_pt_on_the_command_line(tmp_path) -> None:
    """``mcsurrogate generate higgs-jet-diphoton --bias-pt`` writes the library's events and the weight's provenance."""
    pytest.importorskip("pythia8mc")
    import json

    from mcsurrogate.cli import main
    from mcsurrogate.generators.biased import generate_higgs_jet_diphoton
    from mcsurrogate.io import read_events

    out = tmp_path / "hj.parquet"
    args = ["generate", "higgs-jet-diphoton", "-n", "120", "--seed", "4", "--bias-pt", "1.5", "--chunk-size", "60"]
    assert main([*args, "-o", str(out)]) == 0
    events = read_events(out)
    library, _, provenance = generate_higgs_jet_diphoton(120, seed=4, bias_power=1.5, chunk_size=60)
    np.testing.assert_array_equal(events.weight.to_numpy(), library.weight.to_numpy())
    meta = json.loads((tmp_path / "hj.json").read_text())
    assert meta["weights"]["kish_effective_size"] == pytest.approx(provenance["kish_effective_size"])
    assert meta["weights"]["bias_power"] == 1.5 and "--bias-pt 1.5" in meta["command"]
    with pytest.raises(SystemExit) as exc:
        main([*args[:-4], "--bias-pt", "-1", "-o", str(tmp_path / "bad.parquet")])
    assert exc.value.code == 2


def test_the_weighted_mc_study_features() -> None:
    """p_T^γγ from the flows' features is the diphoton p_T that vector computes."""
    from mcsurrogate.workflows.weighted_mc import FEATURES, matrix, pt_gg

    rng = np.random.default_rng(10)
    n = 200
    kinematics = {"pt": rng.uniform(20, 300, (n, 2)), "eta": rng.uniform(-2.5, 2.5, (n, 2))}
    photons = ak.zip(kinematics | {"phi": rng.uniform(-3, 3, (n, 2)), "mass": np.zeros((n, 2))}, with_name="Momentum4D")
    events = ak.zip({"photons": photons, "weight": np.ones(n)}, depth_limit=1)
    x = matrix(events)
    assert x.shape == (n, len(FEATURES))
    np.testing.assert_allclose(pt_gg(x), (events.photons[:, 0] + events.photons[:, 1]).pt.to_numpy(), rtol=1e-9)


def _diphoton_events(n: int, seed: int, weighted: bool) -> ak.Array:
    rng = np.random.default_rng(seed)
    pt = np.sort(20 + rng.exponential(40, (n, 2)), axis=1)[:, ::-1]
    kinematics = {"pt": pt, "eta": rng.uniform(-2.5, 2.5, (n, 2)), "phi": rng.uniform(-3, 3, (n, 2))}
    photons = ak.zip(kinematics | {"mass": np.zeros((n, 2))}, with_name="Momentum4D")
    w = rng.uniform(0.2, 2.0, n) if weighted else np.ones(n)
    return ak.zip({"photons": photons, "weight": w}, depth_limit=1)


def test_the_weighted_mc_study_compares_writes_strict_json_and_its_readme(tmp_path) -> None:
    """The study's comparison, summary over seeds, figures and README on small stand-in samples (tiny flows): the
    tail reference is the reference sample here, so the reference sample's own tail figures are exactly zero; the
    bars follow the rows."""
    import json

    from mcsurrogate.workflows.weighted_mc import (
        TAIL_QUANTILES,
        WeightedMCConfig,
        compare,
        plot,
        plot_summary,
        run_weighted_mc,
        spectra,
        summarise,
        train_flows,
        write_readme,
    )

    config = WeightedMCConfig(
        n_generated=2000, tail_pt=100.0, tail_edges=(100.0, 150.0, 250.0), flow=TINY, training=QUICK
    )
    reference = _diphoton_events(1500, 2, weighted=False)
    data = {
        "biased": _diphoton_events(1500, 0, weighted=True),
        "matched": _diphoton_events(600, 1, weighted=False),
        "reference": reference,
        "tail_reference": reference,
    }
    flows = train_flows(data, config, progress=False)
    # the same optimiser steps: the smaller matched sample trains proportionally more epochs
    assert flows["weighted"].train_config.epochs == 2 and flows["matched"].train_config.epochs == 5
    assert flows["weighted"].metrics["weights"]["source"] == "weight"
    assert flows["matched"].metrics["weights"]["source"] is None
    result = compare(flows, data, config)
    rows = result["rows"]
    assert rows["reference sample"]["w1_tail_gev"] == 0.0 and rows["reference sample"]["chi2"] == 0.0
    assert rows["reference sample"]["tail_quantiles_gev"] == rows["reference sample"]["tail_quantiles_reference_gev"]
    assert len(rows["weighted"]["tail_quantiles_gev"]) == len(TAIL_QUANTILES)
    assert result["c2st_auc_difference"] == rows["weighted"]["c2st_auc"] - rows["matched"]["c2st_auc"]
    w, m = rows["weighted"], rows["matched"]
    assert result["tail_better"] == (w["w1_tail_gev"] < m["w1_tail_gev"] and w["chi2"] < m["chi2"])
    assert set(result["c2st_floors"]) == {"unbiased Pythia (matched sample)", "biased Pythia, weighted"}
    figure = spectra(result, data)
    assert np.sum(figure["tail_reference"]["fraction"]) == pytest.approx(np.mean(pt_of(reference) < 700.0))
    assert sum(figure["training_events"]["matched"]) == np.sum(pt_of(data["matched"]) < 700.0)
    assert plot(figure, tmp_path).is_file()
    for row in rows.values():
        del row["pt_gg"]
    # two seeds: the second with the weighted flow's W1 halved
    second = json.loads(json.dumps(result))
    second["rows"]["weighted"]["w1_tail_gev"] /= 2
    samples = {
        k: {"n_events": len(v), "seed": 0, "bias_power": 1.5, "kish_effective_size": 9.0} for k, v in data.items()
    }
    runs = {"0": {"comparison": result, "samples": samples}, "10": {"comparison": second, "samples": samples}}
    summary = summarise(runs)
    assert summary["weighted"]["w1_tail_gev"]["values"] == [w["w1_tail_gev"], w["w1_tail_gev"] / 2]
    assert summary["weighted"]["w1_tail_gev"]["mean"] == pytest.approx(0.75 * w["w1_tail_gev"])
    assert summary["c2st_auc_difference"]["sd"] == 0.0 and summary["seeds_meeting"]["of"] == 2
    report = {"config": config.to_dict(), "summary": summary, "runs": runs, "figure_pt_gg": figure}
    json.dumps(report, allow_nan=False)
    assert plot_summary(report, tmp_path).is_file()
    meta = {"command": "run.py", "versions": {}, "machine": "test", "wall_seconds": 60.0, "cpu_seconds": 30.0}
    text = write_readme(report, tmp_path, meta).read_text(encoding="utf-8")
    assert f"| 10 | weighted | 1200 events, Kish {w['kish_effective_size_train']:.0f} |" in text
    assert "wall time: 1.0 min (CPU time: 0.5 min)" in text
    assert ("(≤ 0.01: met;" in text) == summary["bar_c2st_within_0.01"]
    with pytest.raises(InputError, match=r"seeds must be one or more integers 4 or more apart"):
        run_weighted_mc(config, tmp_path, tmp_path, seeds=(0, 2))


def pt_of(events: ak.Array) -> np.ndarray:
    return (events.photons[:, 0] + events.photons[:, 1]).pt.to_numpy()


def test_unweighting_keeps_events_with_probability_w_over_max_w() -> None:
    """Hit-or-miss: x ~ N(0, 1) with weights exp(x − 1/2) (a shift to N(1, 1)): the kept events have mean 1 and unit
    variance within their errors, the acceptance is Σw / (n max w), no event twice, and the same seed keeps the same."""
    from mcsurrogate.event_weights import unweight

    rng = np.random.default_rng(11)
    x = rng.normal(size=200_000)
    w = np.exp(np.clip(x, -4, 4) - 0.5)
    kept = unweight(w, seed=3)
    k = len(kept)
    assert abs(k - w.sum() / w.max()) < 5 * np.sqrt(k)
    assert len(np.unique(kept)) == k and np.array_equal(kept, unweight(w, seed=3))
    assert not np.array_equal(kept, unweight(w, seed=4))
    assert abs(x[kept].mean() - 1.0) < 5 / np.sqrt(k) and abs(x[kept].std() - 1.0) < 0.05
    for bad, match in (
        (np.array([1.0, -0.5]), "non-negative"),
        (np.array([1.0, np.nan]), "non-finite"),
        (np.zeros(3), "every weight is zero"),
        (np.ones((2, 2)), "1-D"),
    ):
        with pytest.raises(InputError, match=match):
            unweight(bad, seed=0)
