"""Reweighting a generator against its training MC (ELSA's first step)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.refinement import fit_reweighting
from mcsurrogate.validation import c2st

FEATURES = ["met", "m_jj"]


def _events(rng: np.random.Generator, n: int, shift: float, scale: float) -> ak.Array:
    """Two correlated positive observables (GeV); ``shift``/``scale`` make a mis-modelling generator."""
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], n)
    return ak.zip({"met": 60 * np.exp(0.5 * scale * z[:, 0] + shift), "m_jj": 80 + 15 * scale * z[:, 1]})


def test_reweighting_against_training_mc_closes_the_gap_on_independent_events() -> None:
    rng = np.random.default_rng(21)
    train, holdout = _events(rng, 20000, 0, 1), _events(rng, 20000, 0, 1)
    fit_sample, fresh = _events(rng, 20000, 0.1, 1.1), _events(rng, 20000, 0.1, 1.1)  # the biased generator
    fast = {"folds": 3, "learning_rate": 0.2, "max_iter": 100}
    rw = fit_reweighting(train, fit_sample, FEATURES, seed=1, **fast)
    np.testing.assert_allclose(rw.weights(fit_sample).mean(), 1.0, rtol=1e-12)
    w = rw.weights(fresh)
    x_hold = np.column_stack([ak.to_numpy(holdout[f]) for f in FEATURES])
    x_fresh = np.column_stack([ak.to_numpy(fresh[f]) for f in FEATURES])
    before = c2st(x_hold, x_fresh, n_permutations=20, n_bootstrap=20)
    after = c2st(x_hold, x_fresh, weights_candidate=w, n_permutations=20, n_bootstrap=20)
    assert before.auc > 0.56 and abs(after.auc - 0.5) < 0.015
    assert 0.5 < rw.kish_efficiency < 0.99 and rw.to_dict()["density_ratio"]["max_calibration_error"] < 0.05
    np.testing.assert_array_equal(w, rw.weights(x_fresh))  # records and arrays give the same weights
    again = fit_reweighting(train, fit_sample, FEATURES, seed=1, **fast)
    np.testing.assert_array_equal(again.weights(fresh), w)  # seeded
    assert w.min() >= 1 / rw.clip / rw.normalisation and w.max() <= rw.clip / rw.normalisation


def test_reweighting_refuses_bad_input_by_name() -> None:
    rng = np.random.default_rng(22)
    a, b = _events(rng, 500, 0, 1), _events(rng, 500, 0, 1)
    with pytest.raises(InputError, match=r"lack the columns \['pt'\]"):
        fit_reweighting(a, b, ["met", "pt"])
    with pytest.raises(InputError, match="clip must be > 1"):
        fit_reweighting(a, b, FEATURES, clip=1.0)
    rw = fit_reweighting(a, b, FEATURES, folds=2, max_iter=5)
    with pytest.raises(InputError, match=r"shape \(n, 2\) for columns \['met', 'm_jj'\]"):
        rw.weights(np.zeros((3, 3)))
    with pytest.raises(InputError, match="NaN/inf"):
        rw.weights(np.array([[1.0, np.nan]]))


def test_surrogate_reweighting_of_a_poorly_trained_conditional_flow() -> None:
    from mcsurrogate.refinement import fit_surrogate_reweighting
    from mcsurrogate.surrogate import Surrogate

    from .conftest import correlated_events

    train, test = correlated_events(5000, seed=31), correlated_events(5000, seed=32)
    fast = {"epochs": 1, "batch_size": 256, "patience": None, "device": "cpu", "seed": 0}
    model = Surrogate(["a", "b", "c"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training=fast)
    model.fit(train, progress=False)
    rw = fit_surrogate_reweighting(model, train, folds=2, learning_rate=0.2, max_iter=100, seed=1)
    assert rw.features == ["a", "b", "c", "mu"] and rw.n_generated == 2 * rw.n_reference == 10000
    fresh = model.sample(conditions=test, seed=2, progress=False)  # other conditions, another seed
    x_test = np.column_stack([ak.to_numpy(test[f]) for f in rw.features])
    x_fresh = np.column_stack([ak.to_numpy(fresh[f]) for f in rw.features])
    before = c2st(x_test, x_fresh, n_permutations=20, n_bootstrap=20)
    after = c2st(x_test, x_fresh, weights_candidate=rw.weights(fresh), n_permutations=20, n_bootstrap=20)
    assert before.auc > 0.6 and after.auc < before.auc - 0.05, (before.auc, after.auc)
    with pytest.raises(InputError, match="factor"):
        fit_surrogate_reweighting(model, train, factor=0)


def test_reweighting_saves_and_loads_without_pickle(tmp_path) -> None:
    import json
    import zipfile

    from mcsurrogate.errors import ModelDirectoryError, OutputExistsError
    from mcsurrogate.refinement import Reweighting

    rng = np.random.default_rng(23)
    train, fit_sample, fresh = _events(rng, 3000, 0, 1), _events(rng, 3000, 0.1, 1.1), _events(rng, 2000, 0.1, 1.1)
    rw = fit_reweighting(train, fit_sample, FEATURES, folds=2, learning_rate=0.2, max_iter=30, seed=3)
    dest = rw.save(tmp_path / "rw")
    assert sorted(p.name for p in dest.iterdir()) == ["classifiers.skops", "reweighting.json"]
    names = zipfile.ZipFile(dest / "classifiers.skops").namelist()
    assert "schema.json" in names and not any(n.endswith((".pkl", ".pickle")) for n in names)
    back = Reweighting.load(dest)
    np.testing.assert_array_equal(back.weights(fresh), rw.weights(fresh))
    assert back.to_dict() == rw.to_dict()
    config = json.loads((dest / "reweighting.json").read_text())
    (dest / "reweighting.json").write_text(json.dumps({**config, "versions": {"scikit-learn": "0.0"}}))
    with pytest.warns(UserWarning, match="saved with scikit-learn 0.0, this is"):
        Reweighting.load(dest)

    with pytest.raises(OutputExistsError, match="exists already"):
        rw.save(dest)
    rw.save(dest, overwrite=True)  # replaces it whole: no temporary directory left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rw"]

    config = json.loads((dest / "reweighting.json").read_text())
    (dest / "reweighting.json").write_text(json.dumps({**config, "format": "something else"}))
    with pytest.raises(ModelDirectoryError, match="not a reweighting written by mcsurrogate"):
        Reweighting.load(dest)
    del config["clip"]
    (dest / "reweighting.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelDirectoryError, match=r"reweighting\.json: missing or malformed field \(KeyError\('clip'\)\)"
    ):
        Reweighting.load(dest)
    (dest / "classifiers.skops").write_bytes(b"not a zip")
    (dest / "reweighting.json").write_text(json.dumps({**config, "clip": 20.0}))
    with pytest.raises(ModelDirectoryError, match=r"classifiers\.skops: not a readable skops file"):
        Reweighting.load(dest)
    with pytest.raises(ModelDirectoryError, match="no such reweighting directory"):
        Reweighting.load(tmp_path / "missing")


def test_reweighting_load_refuses_objects_other_than_its_trees(tmp_path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from mcsurrogate.errors import ModelDirectoryError
    from mcsurrogate.refinement import Reweighting

    rng = np.random.default_rng(24)
    a, b = _events(rng, 500, 0, 1), _events(rng, 500, 0.2, 1)
    dest = fit_reweighting(a, b, FEATURES, folds=2, max_iter=5).save(tmp_path / "rw")
    # a file swapped for one with other objects (skops refuses unknown types unless trusted; load trusts none)
    sio.dump([Pipeline([("lr", LogisticRegression())]), print], dest / "classifiers.skops")
    with pytest.raises(ModelDirectoryError, match="holds types a reweighting does not use, refused"):
        Reweighting.load(dest)
