from __future__ import annotations

import json
import math

import awkward as ak
import numpy as np
import pytest
import torch

from mcsurrogate import Surrogate
from mcsurrogate.errors import InputError, ModelDirectoryError, OutputExistsError
from mcsurrogate.flows import FlowConfig, build_flow
from mcsurrogate.surrogate import SCHEMA_VERSION
from mcsurrogate.training import TrainConfig, ema_with_warmup, split_indices, train_flow

from .conftest import correlated_events

FAST = {"epochs": 25, "batch_size": 256, "lr": 3e-3, "device": "cpu", "patience": None}


@pytest.fixture(scope="module")
def trained(small_events: ak.Array) -> Surrogate:
    return Surrogate(["a", "b", "c"], ["mu"], flow={"model": "maf", "blocks": 3, "hidden": 32}, training=FAST).fit(
        small_events, progress=False
    )


def test_conditional_samples_match_the_training_distribution(trained: Surrogate) -> None:
    truth = correlated_events(6000, seed=11)
    gen = trained.sample(conditions=truth, seed=3)
    assert gen.fields == ["a", "b", "c", "mu"]
    np.testing.assert_array_equal(gen.mu.to_numpy(), truth.mu.to_numpy())
    for col in ("a", "b", "c"):
        t, g = truth[col].to_numpy(), gen[col].to_numpy()
        assert abs(g.mean() - t.mean()) < 0.1 * t.std(), col
        assert g.std() == pytest.approx(t.std(), rel=0.1), col
    ct = np.corrcoef(np.stack([truth.a, truth.b, truth.c]))
    cg = np.corrcoef(np.stack([gen.a, gen.b, gen.c]))
    np.testing.assert_allclose(cg, ct, atol=0.1)
    # the condition acts: the spread of b grows with mu as in the data
    lo, hi = gen.mu.to_numpy() < 10, gen.mu.to_numpy() > 30
    assert gen.b.to_numpy()[hi].std() / gen.b.to_numpy()[lo].std() == pytest.approx(
        truth.b.to_numpy()[hi].std() / truth.b.to_numpy()[lo].std(), rel=0.15
    )


def test_same_seed_same_sample_whatever_the_batch_size(trained: Surrogate) -> None:
    cond = correlated_events(500, seed=2)
    a = trained.sample(conditions=cond, seed=7, batch_size=500)
    b = trained.sample(conditions=cond, seed=7, batch_size=64)
    c = trained.sample(conditions=cond, seed=8)
    assert ak.all(a.a == b.a) and ak.all(a.c == b.c)
    assert not ak.all(a.a == c.a)


def test_sample_array_is_the_sample_without_records(trained: Surrogate, small_events: ak.Array) -> None:
    cond = correlated_events(300, seed=5)
    records = trained.sample(conditions=cond, seed=2, batch_size=128)
    expected = np.column_stack([ak.to_numpy(records[t]) for t in trained.targets])
    from_records = trained.sample_array(conditions=cond, seed=2, batch_size=100)
    from_matrix = trained.sample_array(conditions=np.column_stack([ak.to_numpy(cond[c]) for c in trained.conditions]))
    assert from_records.dtype == np.float64 and from_records.shape == (300, len(trained.targets))
    np.testing.assert_array_equal(from_records, expected)
    np.testing.assert_array_equal(from_matrix, trained.sample_array(conditions=cond))
    s = Surrogate(["a", "b"], flow={"model": "realnvp", "blocks": 1, "hidden": 8}, training=FAST | {"epochs": 1})
    s.fit(small_events, progress=False)
    np.testing.assert_array_equal(s.sample_array(50, seed=1)[:, 1], ak.to_numpy(s.sample(50, seed=1).b))
    assert s.sample_array(0).shape == (0, 2)
    with pytest.raises(InputError, match="number of events"):
        s.sample_array()


def test_save_load_round_trip(trained: Surrogate, tmp_path) -> None:
    trained.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "metrics.json",
        "preprocessing.json",
        "weights.safetensors",
    ]
    again = Surrogate.load(tmp_path / "m", device="cpu")
    cond = correlated_events(300, seed=4)
    x, y = trained.sample(conditions=cond, seed=1), again.sample(conditions=cond, seed=1)
    for col in ("a", "b", "c"):
        np.testing.assert_array_equal(x[col].to_numpy(), y[col].to_numpy())
    np.testing.assert_array_equal(trained.log_prob(cond), again.log_prob(cond))
    assert again.info()["targets"] == ["a", "b", "c"]
    with pytest.raises(OutputExistsError, match="exists already"):
        trained.save(tmp_path / "m")
    trained.save(tmp_path / "m", overwrite=True)


def test_log_prob_is_a_density_in_original_units() -> None:
    rng = np.random.default_rng(0)
    x = 1000 + 50 * rng.standard_normal(3000)  # a scale far from 1: the preprocessing Jacobian matters
    ev = ak.zip({"x": x})
    s = Surrogate(["x"], flow={"model": "rqs-ar", "blocks": 2, "hidden": 16}, training=FAST | {"epochs": 5}).fit(
        ev, progress=False
    )
    grid = np.linspace(600, 1400, 4001)
    dens = np.exp(s.log_prob(ak.zip({"x": grid})))
    assert dens.sum() * (grid[1] - grid[0]) == pytest.approx(1.0, abs=0.01)


def test_unconditional_sampling_and_argument_errors(small_events: ak.Array) -> None:
    s = Surrogate(["a", "b"], flow={"model": "realnvp", "blocks": 2, "hidden": 16}, training=FAST | {"epochs": 2}).fit(
        small_events, progress=False
    )
    out = s.sample(1000, seed=0)
    assert len(out) == 1000 and out.fields == ["a", "b"]
    with pytest.raises(InputError, match="unconditional"):
        s.sample(10, conditions=small_events[:10])
    with pytest.raises(InputError, match="number of events"):
        s.sample()


def test_conditions_missing_or_misnamed_at_sampling(trained: Surrogate) -> None:
    with pytest.raises(InputError, match=r"conditional.*mu"):
        trained.sample(100)
    with pytest.raises(InputError, match=r"mu"):
        trained.sample(conditions=ak.zip({"pileup": np.ones(3)}))
    with pytest.raises(InputError, match=r"shape \(n, 1\)"):
        trained.sample(conditions=np.ones((3, 2)))


def test_nonfinite_targets_are_counted_and_optionally_dropped(small_events: ak.Array) -> None:
    a = small_events.a.to_numpy().copy()
    a[:7] = np.nan
    a[7:9] = np.inf
    ev = ak.with_field(small_events, a, "a")
    s = Surrogate(["a", "b"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=FAST | {"epochs": 1})
    with pytest.raises(InputError, match=r"a: 7 NaN, 2 inf.*--drop-nonfinite"):
        s.fit(ev, progress=False)
    s.fit(ev, nonfinite="drop", progress=False)
    assert s.metrics["data"]["dropped_nonfinite"] == {"a": 9}
    assert sum(s.metrics["split"].values()) == len(ev) - 9


def test_too_few_events_for_the_split() -> None:
    ev = correlated_events(40)
    with pytest.raises(InputError, match="too few events"):
        Surrogate(["a"], training=FAST).fit(ev, progress=False)


def test_non_numeric_and_missing_columns(small_events: ak.Array) -> None:
    ev = ak.with_field(small_events, np.array(["x"] * len(small_events)), "label")
    with pytest.raises(InputError, match="label"):
        Surrogate(["a", "label"], training=FAST).fit(ev, progress=False)
    with pytest.raises(InputError, match=r"nope.*(a|available)"):
        Surrogate(["nope"], training=FAST).fit(small_events, progress=False)


def _saved(trained: Surrogate, path):
    trained.save(path)
    return path


def test_damaged_model_directories(trained: Surrogate, tmp_path) -> None:
    with pytest.raises(ModelDirectoryError, match="no such model directory"):
        Surrogate.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirectoryError, match="not an mcsurrogate model directory"):
        Surrogate.load(tmp_path / "empty")

    d = _saved(trained, tmp_path / "incomplete")
    (d / "weights.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match=r"incomplete: missing weights.safetensors"):
        Surrogate.load(d)

    d = _saved(trained, tmp_path / "corrupt")
    (d / "weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelDirectoryError, match="not a readable safetensors"):
        Surrogate.load(d)

    d = _saved(trained, tmp_path / "newer")
    cfg = json.loads((d / "config.json").read_text())
    cfg["schema_version"] = SCHEMA_VERSION + 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError, match=r"newer.*upgrade"):
        Surrogate.load(d)

    d = _saved(trained, tmp_path / "foreign")
    cfg["format"], cfg["schema_version"] = "somebody-else", 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError, match="not written by mcsurrogate"):
        Surrogate.load(d)

    d = _saved(trained, tmp_path / "badjson")
    (d / "preprocessing.json").write_text("{not json")
    with pytest.raises(ModelDirectoryError, match="not valid JSON"):
        Surrogate.load(d)


def test_wasserstein_selection_and_checkpoints(small_events: ak.Array, tmp_path) -> None:
    kw = {"flow": {"model": "maf", "blocks": 1, "hidden": 8}}
    cfg = FAST | {"epochs": 4, "selection": "wasserstein", "selection_events": 500}
    full = Surrogate(["a", "b"], ["mu"], training=cfg, **kw).fit(small_events, checkpoint_dir=tmp_path, progress=False)
    assert full.result.selection == "wasserstein" and math.isfinite(full.result.best_metric)
    assert {p.name for p in tmp_path.iterdir()} == {"last.safetensors", "best.safetensors"}
    # the same run started again finds its finished checkpoint and ends with the same model
    again = Surrogate(["a", "b"], ["mu"], training=cfg, **kw).fit(small_events, checkpoint_dir=tmp_path, progress=False)
    assert again.result.resumed_from_epoch == 4
    cond = correlated_events(200, seed=9)
    np.testing.assert_array_equal(
        full.sample(conditions=cond, seed=2).a.to_numpy(), again.sample(conditions=cond, seed=2).a.to_numpy()
    )
    # a different configuration never resumes a foreign checkpoint
    other = Surrogate(["a", "b"], ["mu"], training=cfg | {"lr": 1e-3}, **kw).fit(
        small_events, checkpoint_dir=tmp_path, progress=False
    )
    assert other.result.resumed_from_epoch == 0


def test_last_epoch_selection_keeps_the_final_weights_and_never_stops_early(small_events: ak.Array) -> None:
    kw = {"flow": {"model": "maf", "blocks": 1, "hidden": 8}}
    cfg = FAST | {"epochs": 4, "lr": 0.5, "patience": 1}  # a rate that makes later epochs worse
    last = Surrogate(["a", "b"], ["mu"], training=cfg | {"selection": "last"}, **kw).fit(small_events, progress=False)
    assert len(last.result.history) == 4 and last.result.best_epoch == 4 and not last.result.stopped_early
    assert last.result.best_metric == last.result.history[-1].val_nll
    with pytest.raises(InputError, match="selection"):
        Surrogate(["a"], training={"selection": "first"})


def test_weight_averaging_keeps_training_and_selects_the_averaged_weights(small_events: ak.Array, tmp_path) -> None:
    kw = {"flow": {"model": "maf", "blocks": 2, "hidden": 16}}
    base = FAST | {"epochs": 5}
    plain = Surrogate(["a", "b"], ["mu"], training=base, **kw).fit(small_events, progress=False)
    tiny = Surrogate(["a", "b"], ["mu"], training=base | {"ema_decay": 1e-9}, **kw).fit(small_events, progress=False)
    ema = Surrogate(["a", "b"], ["mu"], training=base | {"ema_decay": 0.99}, **kw).fit(
        small_events, checkpoint_dir=tmp_path, progress=False
    )
    train_loss = [[h.train_loss for h in m.result.history] for m in (plain, tiny, ema)]
    assert train_loss[0] == train_loss[1] == train_loss[2]  # averaging never feeds back into the optimiser
    val = [[h.val_nll for h in m.result.history] for m in (plain, tiny, ema)]
    np.testing.assert_allclose(val[1], val[0], rtol=1e-5)  # decay → 0: the average is the last step
    assert not np.allclose(val[2], val[0], rtol=1e-5)
    # a finished averaged run resumed from its checkpoint ends with the same model
    cond = correlated_events(300, seed=4)
    again = Surrogate(["a", "b"], ["mu"], training=base | {"ema_decay": 0.99}, **kw).fit(
        small_events, checkpoint_dir=tmp_path, progress=False
    )
    assert again.result.resumed_from_epoch == 5
    np.testing.assert_array_equal(
        ema.sample(conditions=cond, seed=1).a.to_numpy(), again.sample(conditions=cond, seed=1).a.to_numpy()
    )
    with pytest.raises(InputError, match="ema_decay"):
        Surrogate(["a", "b"], ["mu"], training=base | {"ema_decay": 1.0}, **kw)


def test_weight_averaging_ramps_its_decay_up() -> None:
    update = ema_with_warmup(0.999)
    early, late = [torch.zeros(3)], [torch.zeros(1)]
    update(early, [torch.ones(3)], torch.tensor(1))  # after one update the decay is 2/11, not 0.999
    update(late, [torch.ones(1)], 10**6)
    np.testing.assert_allclose(early[0].numpy(), 9 / 11, rtol=1e-6)
    np.testing.assert_allclose(late[0].numpy(), 1e-3, rtol=1e-4)


def test_the_flow_kept_is_the_averaged_one_of_the_best_epoch() -> None:
    rng = np.random.default_rng(3)
    c = rng.normal(size=(2_000, 1))
    x = np.concatenate([c + 0.3 * rng.normal(size=(2_000, 1)), rng.gamma(2.0, size=(2_000, 1))], axis=1)
    flow = build_flow(FlowConfig(model="maf", blocks=2, hidden=16), 2, 1)
    cfg = TrainConfig(epochs=6, batch_size=128, lr=3e-3, device="cpu", patience=None, ema_decay=0.95)
    result = train_flow(flow, x[:1_600], c[:1_600], x[1_600:], c[1_600:], cfg, progress=False)
    with torch.inference_mode():
        nll = -flow.log_prob(
            torch.as_tensor(x[1_600:], dtype=torch.float32), torch.as_tensor(c[1_600:], dtype=torch.float32)
        )
    assert float(nll.mean()) == pytest.approx(result.history[result.best_epoch - 1].val_nll, rel=1e-5)


@pytest.mark.filterwarnings("ignore:1 of 4000 training events hold extreme values:UserWarning")  # the test row, yes
def test_validation_events_beyond_the_fitted_logit_range_are_left_out_and_counted(small_events: ak.Array) -> None:
    cfg = FAST | {"epochs": 1}
    split = split_indices(len(small_events), TrainConfig().fractions, cfg.get("seed", 0))
    a = small_events.a.to_numpy().copy()
    a[split.validation[:2]] = a.max() + 100 * (a.max() - a.min())  # far beyond the training range + 5 %
    a[split.test[:1]] = a.min() - 100 * (a.max() - a.min())
    events = ak.with_field(small_events, a, "a")
    model = Surrogate(
        ["a", "b"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=cfg, preprocessing="logit"
    )
    with pytest.warns(UserWarning, match=r"left out of validation \(2\), test \(1\)"):
        model.fit(events, progress=False)
    assert model.metrics["data"]["outside_fitted_range"] == {"validation": 2, "test": 1}
    assert math.isfinite(model.result.best_metric)


def test_explicit_validation_events_select_and_every_given_event_trains(small_events: ak.Array) -> None:
    n = len(small_events)
    train, val = small_events[: n - 500], small_events[n - 500 :]
    model = Surrogate(
        ["a", "b"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=FAST | {"epochs": 2}
    )
    model.fit(train, validation=val, progress=False)
    assert model.metrics["split"] == {"train": n - 500, "validation": 500, "test": 0}
    # the selection metric is the flow-space NLL of exactly the given validation events
    xv = model.preprocessor.forward(np.column_stack([val.a.to_numpy(), val.b.to_numpy()]))
    cv = model.condition_preprocessor.forward(val.mu.to_numpy()[:, None])
    assert float(-model._flow_log_prob(xv, cv).mean()) == pytest.approx(model.result.best_metric, rel=1e-4)
    with pytest.raises(InputError, match="no events to validate on"):
        model.fit(train, validation=val[:0], progress=False)
