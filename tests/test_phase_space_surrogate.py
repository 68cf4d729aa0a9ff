"""The phase-space map as a Surrogate's event transform (``Surrogate(..., event_transform=...)``): the targets stay
the physical pt/eta/phi/mass columns, the flow learns the RamboOnDiet columns, samples come back physical and
exactly conserving, log_prob is the physical density (checked against a finite-difference Jacobian), the transform
is saved as strict JSON and a model directory without one loads as before; bad inputs are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from mcsurrogate import Surrogate
from mcsurrogate.errors import InputError, ModelDirectoryError
from mcsurrogate.phase_space import PhaseSpacePreprocessor, rambo_on_diet
from mcsurrogate.preprocessing import Preprocessor

OBJECTS = ["b", "j", "mu", "nu"]  # j: a jet whose mass varies per event
MASSES: list[float | None] = [4.8, None, 0.1057, 0.0]
TINY = {"epochs": 2, "batch_size": 256, "device": "cpu"}
FLOW = {"model": "maf", "blocks": 1, "hidden": 8}


def _events(n: int, seed: int, *, system_pt: str) -> ak.Array:
    """Random closed final states (RamboOnDiet from Beta-distributed u; a falling system mass; boosted along z, and
    in the transverse plane for ``system_pt="free"``), as pt/eta/phi (+ j_mass) columns, with a condition ``mu_avg``
    and an event weight ``w``."""
    rng = np.random.default_rng(seed)
    j_mass = rng.uniform(2.0, 20.0, n)
    masses = np.stack([np.full(n, 4.8), j_mass, np.full(n, 0.1057), np.zeros(n)], axis=1)
    transverse = rng.normal(0, 30, (n, 2)) if system_pt == "free" else np.zeros((n, 2))
    system = np.column_stack([120 + rng.exponential(80, n), rng.normal(0, 1, n), transverse])
    p = rambo_on_diet(rng.beta(2, 3, size=(n, 3 * len(OBJECTS) - 4)), system, masses).momenta
    cols: dict[str, np.ndarray] = {}
    for k, o in enumerate(OBJECTS):
        pt = np.hypot(p[:, k, 1], p[:, k, 2])
        cols[f"{o}_pt"], cols[f"{o}_eta"] = pt, np.arcsinh(p[:, k, 3] / pt)
        cols[f"{o}_phi"] = np.arctan2(p[:, k, 2], p[:, k, 1])
    cols["j_mass"] = j_mass
    cols["mu_avg"] = rng.uniform(0, 40, n)
    cols["w"] = rng.uniform(0.5, 1.5, n)
    return ak.zip(cols)


def _preprocessing(pre: PhaseSpacePreprocessor) -> dict[str, list[dict[str, str]]]:
    """Gauss-rank for every flow column; a log first for the passed-through jet mass (a mass must stay ≥ 0)."""
    chains = {c: [{"name": "gauss-rank"}] for c in pre.output_columns}
    chains["j_mass"] = [{"name": "log"}, {"name": "gauss-rank"}]
    return chains


@pytest.fixture(scope="module")
def zero_pt() -> tuple[Surrogate, PhaseSpacePreprocessor, ak.Array]:
    """A conditional surrogate of a final state at rest in the transverse plane, targets listed in reverse."""
    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    events = _events(1000, 1, system_pt="zero")
    model = Surrogate(
        list(reversed(pre.input_columns)),
        ["mu_avg"],
        flow=FLOW,
        preprocessing=_preprocessing(pre),
        training=TINY,
        event_transform=pre,
    ).fit(events, weights="w", progress=False)
    return model, pre, events


def _momenta(events: ak.Array) -> np.ndarray:
    """(events, 4 objects, 4) four-momenta of sampled pt/eta/phi columns and the objects' masses."""
    fixed = {"b": 4.8, "mu": 0.1057, "nu": 0.0}
    out = np.empty((len(events), len(OBJECTS), 4))
    for k, o in enumerate(OBJECTS):
        pt, eta, phi = (np.asarray(events[f"{o}_{v}"]) for v in ("pt", "eta", "phi"))
        m = np.asarray(events["j_mass"]) if o == "j" else fixed[o]
        out[:, k, 1:] = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)
        out[:, k, 0] = np.sqrt(m**2 + np.sum(out[:, k, 1:] ** 2, axis=1))
    return out


def test_the_flow_learns_the_transform_columns_and_samples_conserve_momentum_exactly(zero_pt) -> None:
    model, pre, events = zero_pt
    assert model.targets == list(reversed(pre.input_columns))
    assert model.flow_columns == pre.output_columns == list(model.preprocessor.columns)
    assert model.noise_features == len(pre.output_columns)  # 3n - 4 + 2 + 1 varying mass = 11, not the 13 targets
    # the weights are the events' own: the training split's Kish size from the raw weights
    w = np.asarray(model.split(events, weights="w")["train"]["w"])
    assert model.metrics["weights"]["kish_effective_size"] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)

    generated = model.sample(conditions=events[:600], seed=3)
    assert generated.fields == [*model.targets, "mu_avg"]
    p = _momenta(generated)
    scalar = np.hypot(p[..., 1], p[..., 2]).sum(axis=1)
    assert np.all(np.isfinite(p)) and np.all(np.asarray(generated["j_mass"]) > 0)
    # Σ p_T = 0 exactly (up to rounding), whatever the flow learned
    assert np.max(np.hypot(p[..., 1].sum(axis=1), p[..., 2].sum(axis=1)) / scalar) < 1e-12
    # above threshold and the physical columns map back onto the flow's columns (a point of the transform's range)
    assert np.all(np.sqrt(p[..., 0].sum(axis=1) ** 2 - np.sum(p[..., 1:].sum(axis=1) ** 2, axis=1)) > 4.8 + 0.1057)
    again = pre.forward({c: generated[c] for c in model.targets})
    assert all(np.all(np.isfinite(np.asarray(again[c]))) for c in pre.output_columns)
    # every sampling path agrees: sample_array (targets order) and smaller batches
    matrix = model.sample_array(conditions=events[:600], seed=3, batch_size=250)
    np.testing.assert_array_equal(matrix, np.stack([np.asarray(generated[c]) for c in model.targets], axis=1))
    batches = list(model.sample_batches(conditions=events[:600], seed=3, batch_size=250))
    assert [len(b) for b in batches] == [250, 250, 100]
    np.testing.assert_array_equal(np.asarray(ak.concatenate(batches)["b_pt"]), np.asarray(generated["b_pt"]))
    assert model.info()["event_transform"] == pre.to_dict()


def test_save_load_keeps_the_transform_and_gives_identical_samples(zero_pt, tmp_path: Path) -> None:
    model, pre, events = zero_pt
    d = model.save(tmp_path / "m")
    assert (d / "event_transform.json").is_file()
    state = json.loads((d / "event_transform.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert state == pre.to_dict()
    config = json.loads((d / "config.json").read_text())
    assert config["event_transform"] == "phase-space" and config["schema_version"] == 4
    back = Surrogate.load(d, device="cpu")
    assert back.event_transform == pre and back.targets == model.targets
    a = model.sample(conditions=events[:300], seed=11)
    b = back.sample(conditions=events[:300], seed=11)
    for c in a.fields:
        np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b[c]))
    np.testing.assert_array_equal(model.log_prob(events[:50]), back.log_prob(events[:50]))

    # config.json names the transform: its file must be there and hold that kind
    (d / "event_transform.json").unlink()
    with pytest.raises(ModelDirectoryError, match=r"incomplete: missing event_transform\.json"):
        Surrogate.load(d)
    (d / "event_transform.json").write_text(json.dumps({**pre.to_dict(), "kind": "rambo"}))
    with pytest.raises(ModelDirectoryError, match=r"configuration is damaged.*kind must be one of 'phase-space'"):
        Surrogate.load(d)
    (d / "event_transform.json").write_text(
        json.dumps({**pre.to_dict(), "objects": ["b", "j", "nu"], "masses": [4.8, None, 0.0]})
    )
    with pytest.raises(ModelDirectoryError, match=r"damaged.*the targets must be exactly those"):
        Surrogate.load(d)


def test_log_prob_is_the_flow_density_plus_the_jacobian_of_the_transform() -> None:
    """One event: log_prob = the flow's log-density of the transformed (and preprocessed) columns + log |det| of the
    transform, the determinant taken here by finite differences of the transform itself (system_pt='free': the
    map is square, 13 → 13)."""
    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="free")
    events = _events(600, 2, system_pt="free")
    model = Surrogate(
        pre.input_columns, flow=FLOW, preprocessing=_preprocessing(pre), training=TINY, event_transform=pre.to_dict()
    ).fit(events, progress=False)
    targets = model.targets
    x = np.array([[float(events[c][7]) for c in targets]])

    def forward(z: np.ndarray) -> np.ndarray:
        out = pre.forward({c: z[:, k] for k, c in enumerate(targets)})
        return np.stack([np.asarray(out[c]) for c in pre.output_columns], axis=1)

    jac = np.empty((len(targets), len(targets)))
    for k in range(len(targets)):
        h = 1e-6 * max(abs(x[0, k]), 1.0)
        up, down = x.copy(), x.copy()
        up[0, k] += h
        down[0, k] -= h
        jac[:, k] = (forward(up) - forward(down))[0] / (2 * h)
    log_det = np.linalg.slogdet(jac)[1]
    flow_columns = forward(x)
    y = model.preprocessor.forward(flow_columns)
    flow_space = model._flow_log_prob(y, None)[0] + model.preprocessor.log_abs_det(flow_columns)[0]
    got = model.log_prob(events[7:8])[0]
    assert math.isfinite(got) and abs(log_det) > 1.0  # the transform's Jacobian is far from 1: the test can fail
    assert got == pytest.approx(flow_space + log_det, abs=1e-5)


def test_a_model_directory_without_a_transform_loads_and_saves_as_before(small_events, tmp_path: Path) -> None:
    model = Surrogate(["a", "b"], ["mu"], flow=FLOW, training=TINY).fit(small_events, progress=False)
    assert model.event_transform is None and model.flow_columns == ["a", "b"]
    d = model.save(tmp_path / "plain")
    assert sorted(p.name for p in d.iterdir()) == [
        "config.json",
        "metrics.json",
        "preprocessing.json",
        "weights.safetensors",
    ]
    config = json.loads((d / "config.json").read_text())
    assert config["schema_version"] == 1 and set(config) == {
        "format",
        "schema_version",
        "spec",
        "flow",
        "training",
        "distilled_sampler",
        "mcsurrogate_version",
        "saved",
    }
    back = Surrogate.load(d, device="cpu")
    assert back.event_transform is None and back.info()["event_transform"] is None
    np.testing.assert_array_equal(
        model.sample_array(conditions=small_events[:100], seed=4),
        back.sample_array(conditions=small_events[:100], seed=4),
    )
    (d / "event_transform.json").write_text("{}")  # a stray file that config.json does not name is not read
    assert Surrogate.load(d).event_transform is None


def test_bad_event_transforms_and_targets_are_refused() -> None:
    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    targets = pre.input_columns
    for bad in ("phase-space", 42, [pre]):
        with pytest.raises(InputError, match=r"event_transform must be None, a PhaseSpacePreprocessor or the dict"):
            Surrogate(targets, event_transform=bad)
    with pytest.raises(InputError, match=r"event_transform's kind must be one of 'phase-space', got 'rambo'"):
        Surrogate(targets, event_transform={**pre.to_dict(), "kind": "rambo"})
    with pytest.raises(InputError, match=r"unknown phase-space preprocessing parameter\(s\) \['scale'\]"):
        Surrogate(targets, event_transform={**pre.to_dict(), "scale": 2.0})
    with pytest.raises(InputError, match=r"targets must be exactly those.*missing from the targets: \['nu_phi'\]$"):
        Surrogate([c for c in targets if c != "nu_phi"], event_transform=pre)
    with pytest.raises(InputError, match=r"targets it does not read: \['met'\]"):
        Surrogate([*targets, "met"], event_transform=pre)
    with pytest.raises(
        InputError, match=r"missing from the targets: \['j_mass'\]; targets it does not read: \['j_m'\]"
    ):
        Surrogate([*targets[:-1], "j_m"], event_transform=pre)
    with pytest.raises(InputError, match=r"Preprocessor of columns .* event transform's output columns"):
        Surrogate(targets, preprocessing=Preprocessor(targets, "standardize"), event_transform=pre)
    # the dict form builds the same transform
    assert Surrogate(targets, event_transform=pre.to_dict()).event_transform == pre


def test_train_cli_takes_the_event_transform_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcsurrogate.cli import main
    from mcsurrogate.io import write_events

    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    write_events(_events(500, 3, system_pt="zero"), tmp_path / "mc.parquet")
    config = {
        "targets": pre.input_columns,
        "flow": FLOW,
        "training": TINY,
        "preprocessing": _preprocessing(pre),
        "event_transform": pre.to_dict(),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "model"
    assert (
        main(["train", str(tmp_path / "mc.parquet"), "--config", str(tmp_path / "config.json"), "--out", str(out)]) == 0
    )
    model = Surrogate.load(out, device="cpu")
    assert model.event_transform == pre and model.targets == pre.input_columns
    p = _momenta(model.sample(200, seed=1))
    assert np.max(np.abs(p[..., 1].sum(axis=1)) / np.hypot(p[..., 1], p[..., 2]).sum(axis=1)) < 1e-12
    # `mcsurrogate info` names the transform and the columns the flow learns
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "event transform: phase-space" in shown and pre.output_columns[0] in shown


def test_refinement_and_export_work_in_the_physical_columns(tmp_path: Path) -> None:
    """LASER's refined events and the export sidecar go through the event transform: refined events are physical
    columns that conserve momentum exactly, and the sidecar carries the transform to invert the exported output."""
    from mcsurrogate.export import export_torchscript
    from mcsurrogate.refinement import fit_reweighting

    pre = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    events = _events(1500, 4, system_pt="zero")
    model = Surrogate(
        pre.input_columns, [], flow=FLOW, preprocessing=_preprocessing(pre), training=TINY, event_transform=pre
    ).fit(events, progress=False)
    generated = model.sample(1500, seed=1)
    rw = fit_reweighting(events, generated, model.targets, folds=2, learning_rate=0.2, max_iter=50, seed=1)
    small = {"chains": 16, "warmup": 20, "thin": 1, "distill_events": 1000, "distill_epochs": 2}
    refined = rw.refine(model, 100, seed=2, **small)
    assert set(model.targets) <= set(refined.events.fields)
    p = _momenta(refined.events)
    scalar = np.hypot(p[..., 1], p[..., 2]).sum(axis=1)
    assert np.max(np.hypot(p[..., 1].sum(axis=1), p[..., 2].sum(axis=1)) / scalar) < 1e-12
    w = refined.distilled_weights(refined.events)
    assert w.shape == (len(refined.events),) and np.all(np.isfinite(w)) and np.all(w > 0)
    # the export's output is the flow's space: the sidecar says how to get back to the physical columns
    path = export_torchscript(model, tmp_path / "model.pt", example_batch=16)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["preprocessing"]["event_transform"] == pre.to_dict()
    assert "event_transform" in meta["output"]["space"]
    assert meta["output"]["shape"] == ["batch", len(pre.output_columns)]
