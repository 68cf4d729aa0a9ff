"""Flow matching (``flows/flow_matching.py``): the ODE machinery against closed forms, training by regression,
seeded sampling, save/load through a model directory, and the family by name in the detector-response study.

The contract every family passes (shapes, gradients, round trip, log-determinant, density integrating to one,
save/load of the weights, training beats the base density) runs over ``flow-matching`` in ``tests/test_flows.py``."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math

import awkward as ak
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from mcsurrogate import Surrogate
from mcsurrogate.cli import main
from mcsurrogate.errors import FitError, InputError, ModelDirectoryError
from mcsurrogate.flows import FLOW_FAMILIES, FlowConfig, build_flow
from mcsurrogate.flows.flow_matching import (
    CHUNK,
    AdaptiveSolver,
    FlowMatchingModel,
    FlowMatchingSettings,
    LikelihoodSettings,
    OdeSolver,
    VelocityField,
)
from mcsurrogate.training import TrainConfig, train_flow

from .conftest import correlated_events

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[0.5, 0.3], [0.3, 0.8]], dtype=torch.float64)


class GaussianPathVelocity(nn.Module):
    """The marginal velocity of the straight path from N(0, I) to N(μ, Σ) (σ_min = 0): ``x_t ~ N(t μ, S_t)`` with
    ``S_t = (1 − t)² I + t² Σ``, ``v(x, t) = μ + A_t (x − t μ)``, ``A_t = (t Σ − (1 − t) I) S_t⁻¹`` (symmetric: both
    are polynomials in Σ). Same ``forward``/``jvp`` interface as :class:`VelocityField`."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor) -> None:
        super().__init__()
        self.mu, self.sigma = mu, sigma

    def _a(self, t: torch.Tensor) -> torch.Tensor:
        """``A_t`` for each time of ``t`` (m,): (m, d, d)."""
        eye = torch.eye(len(self.mu), dtype=self.sigma.dtype)
        tt = t.to(self.sigma.dtype)[:, None, None]
        s_t = (1 - tt) ** 2 * eye + tt**2 * self.sigma
        return (tt * self.sigma - (1 - tt) * eye) @ torch.linalg.inv(s_t)

    def jvp(self, x, t, context, tangents):
        # one time for all events (fixed-step solvers) or one per event (the adaptive solver)
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1).expand(len(x))
        a = self._a(t).to(x.dtype)
        mu = self.mu.to(x.dtype)
        v = mu + torch.einsum("mij,mj->mi", a, x - t[:, None] * mu)
        if tangents is None:
            return v, None
        tangents = tangents.expand(len(x), *tangents.shape[-2:])
        return v, torch.einsum("mij,mkj->mki", a, tangents)

    def forward(self, x, t, context=None):
        return self.jvp(x, t, context, None)[0]


def gaussian_path_model(likelihood: LikelihoodSettings, sampling: OdeSolver) -> FlowMatchingModel:
    model = FlowMatchingModel(
        VelocityField(2, None, 4, 1), 2, None, sigma_min=0.0, likelihood=likelihood, sampling=sampling
    )
    model.transform.velocity = GaussianPathVelocity(MU, SIGMA)  # type: ignore[assignment]
    return model


def test_log_prob_of_the_gaussian_path_is_the_closed_form_density() -> None:
    """With the exact marginal velocity, the ODE's density is N(μ, Σ) up to the solver's error (RK4: h⁴), and its
    samples have that mean and covariance."""
    x = torch.tensor(np.random.default_rng(0).normal(size=(200, 2)) * 1.5, dtype=torch.float64)
    truth = multivariate_normal(MU.numpy(), SIGMA.numpy()).logpdf(x.numpy())
    errors = {}
    for steps in (4, 16):
        model = gaussian_path_model(LikelihoodSettings(OdeSolver("rk4", steps)), OdeSolver("rk4", steps))
        with torch.inference_mode():
            errors[steps] = np.abs(model.log_prob(x).numpy() - truth).max()
    assert errors[16] < 1e-4 and errors[16] < errors[4] / 20, errors  # converges at the fourth order
    # Hutchinson's estimate: unbiased, so its mean over events is close; it differs event by event
    model = gaussian_path_model(LikelihoodSettings(OdeSolver("rk4", 16), "hutchinson", probes=64, seed=3), OdeSolver())
    with torch.inference_mode():
        hutch = model.log_prob(x).numpy()
    assert abs(np.mean(hutch - truth)) < 0.02 and np.abs(hutch - truth).max() > 1e-3
    model = gaussian_path_model(LikelihoodSettings(OdeSolver("rk4", 16)), OdeSolver("rk4", 16))
    with torch.inference_mode():
        sample = model.sample_from_noise(model.draw_noise(40_000, np.random.default_rng(1)).double())
    np.testing.assert_allclose(sample.mean(0).numpy(), MU.numpy(), atol=0.015)
    np.testing.assert_allclose(np.cov(sample.numpy().T), SIGMA.numpy(), atol=0.015)


def test_hutchinson_is_seeded_and_the_solver_orders_hold() -> None:
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model="flow-matching", blocks=2, hidden=16, activation="silu"), 3, 2)
    x, c = torch.randn(50, 3), torch.randn(50, 2)
    with torch.inference_mode():
        flow.likelihood = LikelihoodSettings(trace="hutchinson", seed=1)
        a, b = flow.log_prob(x, c), flow.log_prob(x, c)
        flow.likelihood = LikelihoodSettings(trace="hutchinson", seed=2)
        other = flow.log_prob(x, c)
        flow.likelihood = LikelihoodSettings(trace="exact")
        exact = flow.log_prob(x, c)
        assert torch.equal(a, b) and not torch.equal(a, other)
        assert not torch.allclose(a, exact, atol=1e-6)  # an estimate …
        assert abs(float((a - exact).mean())) < 0.05  # … of the same density
        z = flow.draw_noise(200, np.random.default_rng(0))
        cz = torch.randn(200, 2)
        flow.sampling = OdeSolver("rk4", 64)
        ref = flow.sample_from_noise(z, cz)
        err = {}
        for method in ("euler", "midpoint", "rk4"):
            for steps in (4, 8):
                flow.sampling = OdeSolver(method, steps)
                err[method, steps] = float((flow.sample_from_noise(z, cz) - ref).abs().max())
    # halving the step divides the error by about 2, 4 and 16
    assert 1.5 < err["euler", 4] / err["euler", 8] < 3
    assert 3 < err["midpoint", 4] / err["midpoint", 8] < 6
    assert err["rk4", 4] / err["rk4", 8] > 8
    assert err["rk4", 8] < err["midpoint", 8] < err["euler", 8]


@pytest.mark.parametrize("context", [None, 2], ids=["uncond", "cond"])
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_an_event_does_not_depend_on_its_batch(context: int | None, trace: str) -> None:
    """Velocity, samples and log-densities of a row are the same alone, in a batch, and across slices (CHUNK)."""
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model="flow-matching", blocks=2, hidden=8, activation="silu"), 3, context).double()
    flow.likelihood = LikelihoodSettings(OdeSolver("rk4", 2), trace)  # type: ignore[arg-type]
    n = CHUNK + 3
    x = torch.randn(n, 3, dtype=torch.float64)
    c = None if context is None else torch.randn(n, context, dtype=torch.float64)
    with torch.inference_mode():
        lp, sample = flow.log_prob(x, c), flow.sample_from_noise(x, c)
        for i in (0, CHUNK + 1):
            ci = None if c is None else c[i : i + 1]
            assert torch.allclose(flow.sample_from_noise(x[i : i + 1], ci), sample[i : i + 1], atol=1e-12)
            if trace == "exact":  # Hutchinson's probes are drawn per call, by position in the batch
                assert torch.allclose(flow.log_prob(x[i : i + 1], ci), lp[i : i + 1], atol=1e-12)
        if trace == "hutchinson":  # the same probes whatever the slicing
            head = flow.log_prob(x[: CHUNK - 1], None if c is None else c[: CHUNK - 1])
            assert torch.allclose(head, lp[: CHUNK - 1], atol=1e-12)


def test_settings_errors_name_the_parameter() -> None:
    with pytest.raises(InputError, match=r"'method'.*rk4"):
        OdeSolver("rk5")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'steps'"):
        OdeSolver("euler", 0)
    with pytest.raises(InputError, match=r"'trace'.*hutchinson"):
        LikelihoodSettings(trace="stochastic")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'probes'"):
        LikelihoodSettings(probes=0)
    with pytest.raises(InputError, match="'solver'"):
        LikelihoodSettings(solver="rk4")  # type: ignore[arg-type]
    flow = build_flow(FlowConfig(model="flow-matching", blocks=1, hidden=8), 2, None)
    with pytest.raises(InputError, match="likelihood must be"):
        flow.likelihood = "exact"  # type: ignore[assignment,misc]
    with pytest.raises(ValueError, match="unconditional"):
        flow.training_loss(torch.randn(4, 2), torch.randn(4, 1))


def _gaussian_data(n: int, seed: int, conditional: bool) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0, 0], [[1.0, 0.9], [0.9, 1.0]], size=n)
    if not conditional:
        return x, None
    c = rng.uniform(-1.5, 1.5, size=(n, 1))
    return 0.5 * x + np.hstack([c, -c]), c


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
def test_regression_training_learns_the_density_and_resumes_exactly(conditional: bool, tmp_path) -> None:
    """Training by regression lowers the validation NLL (computed through the ODE) well below the base density's,
    and a run stopped after 2 epochs and resumed ends with the same weights as an uninterrupted one: the loss's times
    and noise come from a generator seeded per epoch."""
    x, c = _gaussian_data(3000, 0, conditional)
    xv, cv = _gaussian_data(1000, 1, conditional)
    cfg = FlowConfig(model="flow-matching", blocks=2, hidden=32, activation="silu")
    train = TrainConfig(epochs=4, batch_size=128, lr=3e-3, schedule="power", patience=None, device="cpu", seed=4)
    torch.manual_seed(0)
    flow = build_flow(cfg, 2, 1 if conditional else None)
    result = train_flow(flow, x, c, xv, cv, train, progress=False)
    base_nll = float(np.mean(0.5 * (xv**2).sum(1) + math.log(2 * math.pi)))
    gain = 0.83 if not conditional else 2.2  # the true density's NLL below the base's
    assert result.best_metric < base_nll - 0.6 * gain, (result.best_metric, base_nll)
    # the same run killed in its third epoch (after two checkpoints), then started again
    torch.manual_seed(0)
    first = build_flow(cfg, 2, 1 if conditional else None)
    stop_after, calls, loss = 2, [0], first.training_loss

    class Killed(Exception):
        pass

    def loss_then_kill(*args: object) -> torch.Tensor:
        calls[0] += 1
        if calls[0] > stop_after * (len(x) // train.batch_size):
            raise Killed
        return loss(*args)  # type: ignore[arg-type]

    first.training_loss = loss_then_kill  # type: ignore[method-assign]
    with pytest.raises(Killed):
        train_flow(first, x, c, xv, cv, train, progress=False, checkpoint_dir=tmp_path, run_id="r")
    torch.manual_seed(1)  # a different initialisation and global RNG state: the checkpoint decides
    resumed = build_flow(cfg, 2, 1 if conditional else None)
    again = train_flow(resumed, x, c, xv, cv, train, progress=False, checkpoint_dir=tmp_path, run_id="r")
    assert again.resumed_from_epoch == stop_after
    for (name, p), q in zip(flow.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
def test_surrogate_round_trip_and_seeded_sampling(conditional: bool, tmp_path) -> None:
    events = correlated_events(1500, seed=0)
    s = Surrogate(
        ["a", "b"],
        ["mu"] if conditional else None,
        flow={"model": "flow-matching", "blocks": 1, "hidden": 16, "activation": "silu"},
        training={"epochs": 2, "batch_size": 256, "device": "cpu", "patience": None},
    ).fit(events, progress=False)
    args = {"conditions": events[:300]} if conditional else {"n": 300}
    one = s.sample_array(**args, seed=7)
    assert np.array_equal(one, s.sample_array(**args, seed=7, batch_size=64))  # batches do not matter
    assert not np.array_equal(one, s.sample_array(**args, seed=8))
    loaded = Surrogate.load(s.save(tmp_path / "fm"), device="cpu")
    assert loaded.flow_config.model == "flow-matching"
    assert np.array_equal(one, loaded.sample_array(**args, seed=7))
    np.testing.assert_array_equal(s.log_prob(events[:200]), loaded.log_prob(events[:200]))
    assert np.isfinite(s.metrics["test_nll_flow_space"])


def test_samples_follow_the_density_of_a_trained_model() -> None:
    """A 2-D check of ``log_prob`` against the model's own samples: the histogram of 4 × 10⁴ samples and the density
    integrated over the same bins agree within their statistics (the sampler integrates the ODE forward in time, the
    density is that of the solver's map back from the data; both are the same flow to the solvers' accuracy)."""
    x, _ = _gaussian_data(4000, 0, False)
    x = np.column_stack([x[:, 0], x[:, 1] + 0.6 * x[:, 0] ** 2 - 0.6])  # a banana
    torch.manual_seed(0)
    flow = build_flow(FlowConfig(model="flow-matching", blocks=2, hidden=32, activation="silu"), 2, None)
    cfg = TrainConfig(epochs=4, batch_size=128, lr=3e-3, patience=None, device="cpu")
    train_flow(flow, x[:3000], None, x[3000:], None, cfg, progress=False)
    edges = np.linspace(-3, 3, 11)
    with torch.inference_mode():
        sample = flow.sample_from_noise(flow.draw_noise(40_000, np.random.default_rng(2))).numpy()
        # the density on a fine grid (8 × 8 points per bin), summed over each bin
        fine = np.linspace(-3, 3, 10 * 8 + 1)
        mid = 0.5 * (fine[1:] + fine[:-1])
        gx, gy = np.meshgrid(mid, mid, indexing="ij")
        pts = torch.tensor(np.column_stack([gx.ravel(), gy.ravel()]), dtype=torch.float32)
        dens = flow.log_prob(pts).exp().numpy().reshape(80, 80) * (fine[1] - fine[0]) ** 2
    expected = dens.reshape(10, 8, 10, 8).sum(axis=(1, 3)) * len(sample)
    counts, _, _ = np.histogram2d(sample[:, 0], sample[:, 1], bins=[edges, edges])
    sel = expected > 30
    pulls = (counts[sel] - expected[sel]) / np.sqrt(expected[sel])
    assert sel.sum() > 30
    assert np.mean(pulls**2) < 2.0, np.mean(pulls**2)  # χ²/bin: the histogram density check
    assert abs(counts[sel].sum() / expected[sel].sum() - 1) < 0.01


def test_the_detector_response_study_takes_the_family_by_name() -> None:
    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.response import SmearingConfig, smear_photons
    from mcsurrogate.response.study import run_scenario

    smeared = smear_photons(load_default_truth()[:2000], SmearingConfig("baseline"), seed=0)
    result = run_scenario(
        smeared,
        preset="demo",
        flow={"model": "flow-matching", "blocks": 1, "hidden": 16},
        training={"epochs": 1, "device": "cpu"},
        n_boot=2,
        progress=False,
    )
    report = result.to_dict()
    assert report["flow"]["model"] == "flow-matching"
    assert np.isfinite(report["evaluation"]["mass_mean_difference_gev"])


# -- the solver settings in the configuration -----------------------------------------------------------------------
#: non-default settings at every level (the likelihood's solver and trace included)
SETTINGS = {
    "sigma_min": 0.0,
    "sampling": {"method": "midpoint", "steps": 3},
    "likelihood": {"solver": {"method": "euler", "steps": 5}, "trace": "hutchinson", "probes": 2, "seed": 4},
}
FM_FLOW = {"model": "flow-matching", "blocks": 1, "hidden": 16, "activation": "silu"}


def test_the_configuration_carries_the_settings_into_the_model() -> None:
    cfg = FlowConfig(**FM_FLOW, flow_matching=SETTINGS)
    assert cfg.flow_matching == FlowMatchingSettings(
        0.0, OdeSolver("midpoint", 3), LikelihoodSettings(OdeSolver("euler", 5), "hutchinson", probes=2, seed=4)
    )
    assert cfg.to_dict()["flow_matching"] == SETTINGS and FlowConfig.from_dict(cfg.to_dict()) == cfg
    json.dumps(cfg.to_dict(), allow_nan=False)  # strict JSON
    flow = build_flow(cfg, 2, 1)
    assert isinstance(flow, FlowMatchingModel) and flow.settings == cfg.flow_matching
    assert (flow.sigma_min, flow.sampling, flow.likelihood) == (
        0.0,
        OdeSolver("midpoint", 3),
        cfg.flow_matching.likelihood,
    )
    # left out, at any level: the defaults (a flow-matching configuration always has explicit settings)
    assert FlowConfig(**FM_FLOW).flow_matching == FlowMatchingSettings()
    partial = FlowConfig(**FM_FLOW, flow_matching={"likelihood": {"solver": {"steps": 2}}})
    assert partial.flow_matching.likelihood == LikelihoodSettings(solver=OdeSolver("rk4", 2))
    assert partial.flow_matching.sampling == OdeSolver() and partial.flow_matching.sigma_min == 1e-4
    # numpy numbers become plain Python ones (JSON)
    steps = FlowConfig(**FM_FLOW, flow_matching={"sampling": {"steps": np.int64(6)}}).to_dict()["flow_matching"]
    assert type(steps["sampling"]["steps"]) is int


#: FlowConfig.to_dict()'s keys for every family but flow matching, as before the flow_matching field: Surrogate.fit
#: fingerprints the configuration to resume a run, so a new key would orphan every checkpoint of these families
OTHER_FAMILY_KEYS = {
    "model", "blocks", "hidden", "layers", "activation", "residual", "bins", "tail_bound", "components",
    "permutation", "permutation_seed", "batch_norm", "affine_blocks",
}  # fmt: skip


@pytest.mark.parametrize("model", [m for m in FLOW_FAMILIES if m != "flow-matching"])
def test_the_other_families_dicts_are_unchanged(model: str) -> None:
    cfg = FlowConfig(model=model)
    assert set(cfg.to_dict()) == OTHER_FAMILY_KEYS
    assert cfg.flow_matching is None and FlowConfig.from_dict(cfg.to_dict() | {"flow_matching": None}) == cfg
    with pytest.raises(InputError, match=rf"'flow_matching' applies to model 'flow-matching' only, not '{model}'"):
        FlowConfig(model=model, flow_matching={})
    assert set(FlowConfig(**FM_FLOW).to_dict()) == OTHER_FAMILY_KEYS | {"flow_matching"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sampling": {"steps": 0}}, r"'flow_matching.sampling'.*'steps' must be an integer ≥ 1, got 0"),
        ({"sampling": {"method": "rk5"}}, r"'flow_matching.sampling'.*'method'.*rk4.*got 'rk5'"),
        ({"sampling": "rk4"}, r"'flow_matching.sampling' must be a dict of OdeSolver fields \(method, steps\)"),
        ({"likelihood": {"solver": {"steps": 1.5}}}, r"'flow_matching.likelihood.solver'.*'steps' must be an integer"),
        ({"likelihood": {"trace": "stochastic"}}, r"'flow_matching.likelihood'.*'trace'.*hutchinson"),
        ({"likelihood": {"probes": 0}}, r"'flow_matching.likelihood'.*'probes'"),
        ({"likelihood": {"seed": -1}}, r"'flow_matching.likelihood'.*'seed'"),
        ({"sigma_min": 1.0}, r"'flow_matching'.*'sigma_min' must be < 1.0"),
        ({"sigma_min": "0"}, r"'flow_matching'.*'sigma_min' must be a number"),
        ({"sampling": {"stpes": 4}}, r"unknown flow 'flow_matching.sampling' parameter\(s\) \['stpes'\]; valid"),
        ({"sigma": 0.0}, r"unknown flow 'flow_matching' parameter\(s\) \['sigma'\]"),
        ("rk4", r"'flow_matching' must be a dict of FlowMatchingSettings fields"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(settings: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        FlowConfig.from_dict(FM_FLOW | {"flow_matching": settings})


def test_bad_settings_on_the_model_are_refused() -> None:
    flow = build_flow(FlowConfig(**FM_FLOW), 2, None)
    with pytest.raises(InputError, match="sampling must be an OdeSolver"):
        flow.sampling = "rk4"  # type: ignore[assignment]
    with pytest.raises(InputError, match=r"sigma_min must be < 1\.0"):
        flow.sigma_min = 1.0
    with pytest.raises(InputError, match="settings must be a FlowMatchingSettings"):
        flow.settings = SETTINGS  # type: ignore[assignment]
    with pytest.raises(InputError, match="flow-matching 'sampling' must be a OdeSolver"):
        FlowMatchingSettings(sampling={"steps": 2})  # type: ignore[arg-type]
    assert flow.settings == FlowMatchingSettings()  # nothing was half-set


def _fit(flow: dict, conditional: bool = True) -> tuple[Surrogate, ak.Array]:
    events = correlated_events(1200, seed=0)
    s = Surrogate(
        ["a", "b"],
        ["mu"] if conditional else None,
        flow=flow,
        training={"epochs": 1, "batch_size": 256, "device": "cpu", "patience": None},
    ).fit(events, progress=False)
    return s, events


def test_solver_settings_survive_save_and_load(tmp_path) -> None:
    s, events = _fit(FM_FLOW | {"flow_matching": SETTINGS})
    settings = FlowConfig(**FM_FLOW, flow_matching=SETTINGS).flow_matching
    assert s.model.settings == settings
    one = s.sample_array(conditions=events[:300], seed=7)
    lp = s.log_prob(events[:200])
    loaded = Surrogate.load(s.save(tmp_path / "fm"), device="cpu")
    assert json.loads((tmp_path / "fm" / "config.json").read_text())["flow"]["flow_matching"] == SETTINGS
    assert loaded.flow_config == s.flow_config and loaded.model.settings == settings
    assert np.array_equal(one, loaded.sample_array(conditions=events[:300], seed=7))
    np.testing.assert_array_equal(lp, loaded.log_prob(events[:200]))
    # the settings matter: with the defaults the same weights give other samples and densities
    loaded.model.settings = FlowMatchingSettings()
    assert not np.array_equal(one, loaded.sample_array(conditions=events[:300], seed=7))
    assert not np.array_equal(lp, loaded.log_prob(events[:200]))
    # an attribute set on the model changes that model only: the configuration is what is saved …
    again = Surrogate.load(loaded.save(tmp_path / "changed"), device="cpu")
    assert again.model.settings == settings
    assert np.array_equal(one, again.sample_array(conditions=events[:300], seed=7))
    # … and the documented way to keep the change puts it into the configuration
    loaded.flow_config = dataclasses.replace(loaded.flow_config, flow_matching=loaded.model.settings)
    kept = Surrogate.load(loaded.save(tmp_path / "kept"), device="cpu")
    assert kept.model.settings == FlowMatchingSettings()


def test_a_model_saved_before_the_settings_existed_loads_with_the_defaults(tmp_path) -> None:
    s, _ = _fit(FM_FLOW, conditional=False)
    path = s.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    assert config["flow"].pop("flow_matching") == FlowMatchingSettings().to_dict()
    (path / "config.json").write_text(json.dumps(config))  # the config.json of an earlier version
    old = Surrogate.load(path, device="cpu")
    assert old.flow_config == s.flow_config and old.model.settings == FlowMatchingSettings()
    assert FlowMatchingSettings() == FlowMatchingSettings(1e-4, OdeSolver("rk4", 8), LikelihoodSettings())
    assert np.array_equal(old.sample_array(n=200, seed=3), s.sample_array(n=200, seed=3))
    # a bad value in config.json: the loader names the key (the schema's, which says no more than its entry)
    config["flow"]["flow_matching"] = {"sampling": {"method": "rk5"}}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match=r"'flow.flow_matching'.*rk5"):
        Surrogate.load(path, device="cpu")


def test_the_command_line_trains_with_the_settings_of_its_config_file(tmp_path) -> None:
    data = tmp_path / "events.parquet"
    ak.to_parquet(correlated_events(800, seed=1), data)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"flow": FM_FLOW | {"flow_matching": SETTINGS}}))
    args = ["train", str(data), "--targets", "a,b", "--conditions", "mu", "--config", str(config), "--epochs", "1"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, "--device", "cpu", "--out", str(tmp_path / "m")]) == 0
    loaded = Surrogate.load(tmp_path / "m", device="cpu")
    assert loaded.model.settings == FlowConfig(**FM_FLOW, flow_matching=SETTINGS).flow_matching
    config.write_text(json.dumps({"flow": FM_FLOW | {"flow_matching": {"sampling": {"steps": 0}}}}))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main([*args, "--device", "cpu", "--out", str(tmp_path / "bad")]) == 2
    assert "'flow_matching.sampling'" in err.getvalue() and "'steps'" in err.getvalue()


# -- the detector-response preset -------------------------------------------------------------------------------------
def test_the_response_preset_trains_samples_and_keeps_its_settings(tmp_path) -> None:
    """``flow-matching`` is a response preset (its solver settings in the configuration, so the saved model samples
    as the trained one); it trains through ``train_response`` with its epochs overridden and smears truth events;
    ``mcsurrogate train-response --preset flow-matching`` takes it."""
    from mcsurrogate.data_files import load_default_truth
    from mcsurrogate.io import write_events
    from mcsurrogate.response import PRESETS, apply_response, response_surrogate, train_response
    from mcsurrogate.response.smearing import SmearingConfig, smear_photons

    assert "flow-matching" in PRESETS
    untrained = response_surrogate("flow-matching")
    assert untrained.flow_config.model == "flow-matching" and untrained.flow_config.flow_matching is not None
    assert untrained.train_config.ema_decay is not None and untrained.train_config.epochs > 1
    truth = load_default_truth()[:1500]
    smeared = smear_photons(truth, SmearingConfig("baseline"), seed=0)
    model = train_response(smeared, "flow-matching", training={"epochs": 1, "device": "cpu"}, progress=False)
    assert isinstance(model.model, FlowMatchingModel)
    assert model.model.settings == untrained.flow_config.flow_matching
    assert model.train_config.epochs == 1 and np.isfinite(model.metrics["test_nll_flow_space"])
    reco = apply_response(model, truth[:200], seed=3)
    assert len(reco) == 200
    dpt = (reco.photons.pt - reco.truth_photons.pt).to_numpy().ravel()
    assert np.all(np.isfinite(dpt)) and 0 < np.std(dpt) < 50  # GeV: a smearing, not a copy, not an explosion
    loaded = Surrogate.load(model.save(tmp_path / "preset"), device="cpu")
    again = apply_response(loaded, truth[:200], seed=3)
    assert np.array_equal(reco.photons.pt.to_numpy(), again.photons.pt.to_numpy())
    # the command line
    write_events(smeared, tmp_path / "smeared.parquet")
    args = ["train-response", str(tmp_path / "smeared.parquet"), "--preset", "flow-matching", "--epochs", "1"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, "--device", "cpu", "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["flow"]["model"] == "flow-matching"


# -- the adaptive solver (Dormand–Prince 5(4)) ------------------------------------------------------------------------
LINEAR = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)


@pytest.mark.parametrize("step_size", ["event", "batch"])
def test_dopri5_meets_its_tolerance_on_a_linear_ode(step_size: str) -> None:
    """``dy/dt = A y`` has ``y(1) = exp(A) y(0)``: the global error stays within a small multiple of the local
    tolerance ``atol + rtol |y|``, falls with it, costs more evaluations as it tightens, and runs back in time."""
    evaluations: list[int] = []

    def fun(y, t, rows=None):
        assert t.shape == (len(y),)  # one time per row
        evaluations.append(len(y))
        return y @ LINEAR.T

    y0 = torch.tensor(np.random.default_rng(0).normal(size=(40, 2)))
    exact = y0 @ torch.linalg.matrix_exp(LINEAR).T
    errors, cost = {}, {}
    for tol in (1e-4, 1e-6, 1e-8):
        evaluations.clear()
        solver = AdaptiveSolver(rtol=tol, atol=tol, step_size=step_size)  # type: ignore[arg-type]
        y = solver.integrate(fun, y0, 0.0, 1.0)
        errors[tol] = float(((y - exact).abs() / (tol + tol * exact.abs())).max())
        cost[tol] = sum(evaluations) / len(y0)
        back = solver.integrate(fun, exact, 1.0, 0.0)
        assert float(((back - y0).abs() / (tol + tol * y0.abs())).max()) < 3
        assert torch.equal(y, solver.integrate(fun, y0, 0.0, 1.0))  # the same step sequence
    assert max(errors.values()) < 3, errors
    assert cost[1e-4] < cost[1e-6] < cost[1e-8], cost
    # the absolute error itself falls with the tolerance (fifth order: ~ tol^(5/6)… at least 30× per 100×)
    assert errors[1e-8] * 1e-8 < errors[1e-6] * 1e-6 / 30 < errors[1e-4] * 1e-4 / 900
    with pytest.raises(FitError, match=r"'max_steps' = 3"):
        AdaptiveSolver(rtol=1e-10, atol=1e-10, max_steps=3).integrate(fun, y0, 0.0, 1.0)


def test_dopri5_log_prob_samples_and_inverse_agree_with_rk4() -> None:
    """On the analytic Gaussian path (2-D): dopri5's log_prob (exact trace and Hutchinson) agrees with RK4 × 64 and
    with the closed form, its samples with RK4 × 64's from the same noise, and ``inverse`` integrates back to the
    data it came from."""
    x = torch.tensor(np.random.default_rng(0).normal(size=(300, 2)) * 1.5, dtype=torch.float64)
    truth = multivariate_normal(MU.numpy(), SIGMA.numpy()).logpdf(x.numpy())
    dopri = AdaptiveSolver(rtol=1e-7, atol=1e-7)
    model = gaussian_path_model(LikelihoodSettings(dopri, "exact"), dopri)
    reference = gaussian_path_model(LikelihoodSettings(OdeSolver("rk4", 64), "exact"), OdeSolver("rk4", 64))
    with torch.inference_mode():
        lp, lp_ref = model.log_prob(x).numpy(), reference.log_prob(x).numpy()
        assert np.abs(lp - lp_ref).max() < 1e-5 and np.abs(lp - truth).max() < 1e-5
        noise = model.draw_noise(500, np.random.default_rng(1)).double()
        sample = model.sample_from_noise(noise)
        assert float((sample - reference.sample_from_noise(noise)).abs().max()) < 1e-5
        z, logdet = model.transform(sample)
        back, inv_logdet = model.transform.inverse(z)
        assert float((back - sample).abs().max()) < 1e-5 and float((z - noise).abs().max()) < 1e-5
        assert float((logdet + inv_logdet).abs().max()) < 1e-5
        for settings in (LikelihoodSettings(dopri, "hutchinson", probes=2, seed=5),):
            model.likelihood = settings
            reference.likelihood = dataclasses.replace(settings, solver=OdeSolver("rk4", 64))
            assert np.abs(model.log_prob(x).numpy() - reference.log_prob(x).numpy()).max() < 1e-5


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_dopri5_on_a_network_agrees_with_rk4_and_is_reproducible(trace: str) -> None:
    """A conditional 2-D velocity network: dopri5 agrees with RK4 × 64 in log_prob and samples; the same noise gives
    the same samples, and with per-event step sizes an event's sample and density do not depend on its batch."""
    torch.manual_seed(1)
    flow = build_flow(FlowConfig(model="flow-matching", blocks=2, hidden=16, activation="silu"), 2, 1).double()
    with torch.no_grad():  # a velocity field that bends the paths (the untrained one is near zero)
        flow.velocity.out.weight.mul_(20.0)
    dopri = AdaptiveSolver(rtol=1e-7, atol=1e-7)
    n = CHUNK + 5
    x, c = torch.randn(n, 2, dtype=torch.float64), torch.randn(n, 1, dtype=torch.float64)
    with torch.inference_mode():
        flow.likelihood = LikelihoodSettings(OdeSolver("rk4", 64), trace, seed=2)  # type: ignore[arg-type]
        flow.sampling = OdeSolver("rk4", 64)
        lp_ref, sample_ref = flow.log_prob(x, c), flow.sample_from_noise(x, c)
        flow.likelihood = LikelihoodSettings(dopri, trace, seed=2)  # type: ignore[arg-type]
        flow.sampling = dopri
        lp, sample = flow.log_prob(x, c), flow.sample_from_noise(x, c)
        assert float((lp - lp_ref).abs().max()) < 1e-5 and float((sample - sample_ref).abs().max()) < 1e-5
        assert float((sample - x).abs().mean()) > 0.1  # the field moves the events
        assert torch.equal(sample, flow.sample_from_noise(x, c)) and torch.equal(lp, flow.log_prob(x, c))
        for i in (0, CHUNK + 2):
            assert torch.allclose(flow.sample_from_noise(x[i : i + 1], c[i : i + 1]), sample[i : i + 1], atol=1e-10)
            if trace == "exact":  # Hutchinson's probes are drawn by position in the batch
                assert torch.allclose(flow.log_prob(x[i : i + 1], c[i : i + 1]), lp[i : i + 1], atol=1e-10)
        # one step size for the batch: the same solution to the tolerance, but a row depends on its batch
        flow.sampling = AdaptiveSolver(rtol=1e-7, atol=1e-7, step_size="batch")
        batch = flow.sample_from_noise(x, c)
        assert float((batch - sample_ref).abs().max()) < 1e-5 and not torch.equal(batch, sample)


DOPRI5 = {"method": "dopri5", "rtol": 1e-4, "atol": 1e-6, "safety": 0.9, "min_factor": 0.2, "max_factor": 10.0,
          "max_steps": 1000, "step_size": "event"}  # fmt: skip


def test_dopri5_settings_round_trip_and_refuse_bad_values() -> None:
    settings = {"sampling": DOPRI5, "likelihood": {"solver": {"method": "dopri5", "rtol": 1e-3}}}
    cfg = FlowConfig(**FM_FLOW, flow_matching=settings)
    assert cfg.flow_matching.sampling == AdaptiveSolver(rtol=1e-4, atol=1e-6)
    assert cfg.flow_matching.likelihood.solver == AdaptiveSolver(rtol=1e-3)
    out = cfg.to_dict()
    assert out["flow_matching"]["sampling"] == DOPRI5 and FlowConfig.from_dict(json.loads(json.dumps(out))) == cfg
    # a fixed-step solver's JSON is as before the adaptive one existed: method and steps only
    assert FlowConfig(**FM_FLOW).to_dict()["flow_matching"]["sampling"] == {"method": "rk4", "steps": 8}
    with pytest.raises(InputError, match=r"'dopri5' is adaptive: use AdaptiveSolver"):
        OdeSolver("dopri5")  # type: ignore[arg-type]
    for bad, message in [
        ({"sampling": {"method": "dopri5", "rtol": -1.0}}, r"'flow_matching.sampling'.*'rtol' must be ≥ 0.0, got -1"),
        ({"sampling": {"method": "dopri5", "rtol": 0, "atol": 0}}, r"'flow_matching.sampling'.*both be 0"),
        ({"sampling": {"method": "dopri5", "atol": "1e-5"}}, r"'flow_matching.sampling'.*'atol' must be a number"),
        ({"sampling": {"method": "dopri5", "max_steps": 0}}, r"'flow_matching.sampling'.*'max_steps'"),
        ({"sampling": {"method": "dopri5", "safety": 1.5}}, r"'flow_matching.sampling'.*'safety' must be ≤ 1.0"),
        ({"sampling": {"method": "dopri5", "min_factor": 1.0}}, r"'flow_matching.sampling'.*'min_factor'"),
        ({"sampling": {"method": "dopri5", "step_size": "row"}}, r"'flow_matching.sampling'.*'step_size'.*batch"),
        ({"sampling": {"method": "dopri5", "steps": 8}}, r"unknown flow 'flow_matching.sampling' parameter.*steps"),
        ({"sampling": {"method": "rk4", "rtol": 1e-3}}, r"unknown flow 'flow_matching.sampling' parameter.*rtol"),
        ({"likelihood": {"solver": {"method": "dopri5", "atol": -1}}}, r"'flow_matching.likelihood.solver'.*'atol'"),
    ]:
        with pytest.raises(InputError, match=message):
            FlowConfig.from_dict(FM_FLOW | {"flow_matching": bad})


def test_dopri5_settings_survive_save_and_load(tmp_path) -> None:
    settings = {"sampling": DOPRI5, "likelihood": {"solver": DOPRI5 | {"rtol": 1e-3}, "trace": "exact"}}
    s, events = _fit(FM_FLOW | {"flow_matching": settings})
    one = s.sample_array(conditions=events[:300], seed=7)
    lp = s.log_prob(events[:200])
    assert np.array_equal(one, s.sample_array(conditions=events[:300], seed=7))  # reproducible by seed
    loaded = Surrogate.load(s.save(tmp_path / "dopri5"), device="cpu")
    assert json.loads((tmp_path / "dopri5" / "config.json").read_text())["flow"]["flow_matching"]["sampling"] == DOPRI5
    assert loaded.model.settings == s.model.settings and isinstance(loaded.model.sampling, AdaptiveSolver)
    assert np.array_equal(one, loaded.sample_array(conditions=events[:300], seed=7))
    np.testing.assert_array_equal(lp, loaded.log_prob(events[:200]))
