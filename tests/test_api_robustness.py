"""The Python API as a careless user calls it (issue 28, items 6–8): every wrong type, nonsense training input and
tampered model file ends in a domain error that names the parameter, column or key, never in a TypeError from deep
inside numpy or torch, and never in a silent wrong answer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import awkward as ak
import hist
import numpy as np
import pytest

from mcsurrogate import FeatureSpec, ObjectSlots, Preprocessor, Surrogate, TrainConfig
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import InputError, MCSurrogateError, ModelDirectoryError, OutputExistsError
from mcsurrogate.flows import FlowConfig
from mcsurrogate.flows.distilled import DistillConfig
from mcsurrogate.records import DerivedObservable
from mcsurrogate.refinement import Reweighting, fit_reweighting, fit_surrogate_reweighting
from mcsurrogate.response import SmearingConfig, apply_response, distill_response, smear_photons, train_response
from mcsurrogate.response.surrogate import ResponseLayout, response_surrogate
from mcsurrogate.stats import asimov_counts, build_workspace, fill_template
from mcsurrogate.validation import c2st, compare_correlations, fpd

from .conftest import correlated_events

pd = pytest.importorskip("pandas")

TINY_FLOW = {"model": "maf", "blocks": 1, "hidden": 8}
TINY_TRAINING = {"epochs": 1, "batch_size": 256, "device": "cpu", "patience": None}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny trained objects of every public entry point, and their saved directories."""
    events = correlated_events(600, seed=0)
    cond = Surrogate(["a", "b"], ["mu"], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, progress=False)
    unc = Surrogate(["a", "b"], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, progress=False)
    truth = load_default_truth()[:1500]
    smeared = smear_photons(truth, SmearingConfig("baseline"), seed=0)
    response = train_response(
        smeared, "demo", flow={"blocks": 1, "hidden": 8}, training={"epochs": 1, "device": "cpu"}, progress=False
    )
    rng = np.random.default_rng(0)
    ref = ak.zip({"x": rng.normal(size=400), "y": rng.normal(size=400)})
    gen = ak.zip({"x": rng.normal(0.3, size=400), "y": rng.normal(size=400)})
    reweighting = fit_reweighting(ref, gen, ["x", "y"], folds=2, max_iter=10)
    root = tmp_path_factory.mktemp("api")
    return SimpleNamespace(
        events=events,
        cond=cond,
        unc=unc,
        truth=truth,
        smeared=smeared,
        response=response,
        ref=ref,
        gen=gen,
        reweighting=reweighting,
        model_dir=cond.save(root / "model"),
        reweighting_dir=reweighting.save(root / "reweighting"),
    )


# -- item 6: wrong types at the public boundary ----------------------------------------------------------------------
Case = tuple[str, Callable[[SimpleNamespace], Any], str]

WRONG_TYPES: list[Case] = [
    # Surrogate(...)
    ("targets-string", lambda a: Surrogate("mu"), r"targets must be a list of column names, got the string 'mu'"),
    ("targets-mapping", lambda a: Surrogate({"x": 1}), r"targets must be a list of column names, got \{'x': 1\}"),
    ("targets-int", lambda a: Surrogate(5), r"targets must be a list of column names, got 5 \(int\)"),
    ("conditions-string", lambda a: Surrogate(["a"], "mu"), r"conditions must be a list of column names"),
    ("conditions-int", lambda a: Surrogate(["a"], 5), r"conditions must be a list of column names"),
    ("flow-int", lambda a: Surrogate(["a"], flow=5), r"flow must be a family name.*got 5 \(int\)"),
    ("flow-none", lambda a: Surrogate(["a"], flow=None), r"flow must be a family name"),
    ("flow-list", lambda a: Surrogate(["a"], flow=["maf"]), r"flow must be a family name"),
    ("training-int", lambda a: Surrogate(["a"], training=5), r"training must be a TrainConfig or a dict"),
    ("training-string", lambda a: Surrogate(["a"], training="fast"), r"training must be a TrainConfig or a dict"),
    ("spec-int", lambda a: Surrogate(spec=5), r"spec must be a FeatureSpec"),
    ("preprocessing-int", lambda a: Surrogate(["a"], preprocessing=5), r"preprocessing of column 'a'"),
    ("preprocessing-map-int", lambda a: Surrogate(["a"], preprocessing={"a": 5}), r"preprocessing of column 'a'"),
    (
        "condition-preprocessing-int",
        lambda a: Surrogate(["a"], ["mu"], condition_preprocessing=5),
        r"preprocessing of column 'mu'",
    ),
    (
        "preprocessor-other-columns",
        lambda a: Surrogate(["a", "b"], preprocessing=Preprocessor(["x"], "standardize")),
        r"preprocessing.*columns \['x'\].*targets \['a', 'b'\]",
    ),
    # TrainConfig fields
    ("training-epochs-bool", lambda a: TrainConfig(epochs=True), r"'epochs' must be an integer, got True"),
    ("training-lr-string", lambda a: TrainConfig(lr="x"), r"'lr' must be a number, got 'x' \(str\)"),
    ("training-seed-string", lambda a: TrainConfig(seed="a"), r"'seed' must be an integer, got 'a'"),
    ("training-seed-negative", lambda a: TrainConfig(seed=-1), r"'seed' must be an integer ≥ 0, got -1"),
    ("training-seed-float", lambda a: TrainConfig(seed=1.5), r"'seed' must be an integer, got 1.5"),
    ("training-fractions-float", lambda a: TrainConfig(fractions=0.8), r"fractions must be three numbers"),
    ("training-fractions-string", lambda a: TrainConfig(fractions="abc"), r"fractions must be three numbers"),
    ("training-patience-string", lambda a: TrainConfig(patience="x"), r"'patience' must be an integer"),
    ("training-patience-zero", lambda a: TrainConfig(patience=0), r"'patience' must be an integer ≥ 1"),
    ("training-clip-string", lambda a: TrainConfig(clip_grad_norm="x"), r"'clip_grad_norm' must be a number"),
    ("training-power-string", lambda a: TrainConfig(power="x"), r"'power' must be a number"),
    ("training-weight-decay", lambda a: TrainConfig(weight_decay=-1.0), r"'weight_decay' must be ≥ 0"),
    ("training-device-int", lambda a: TrainConfig(device=5), r"'device' must be a string"),
    ("training-from-dict-int", lambda a: TrainConfig.from_dict(5), r"training must be a dict"),
    # FeatureSpec, ObjectSlots, DerivedObservable, Preprocessor
    ("spec-objects-int", lambda a: FeatureSpec(["a"], objects=5), r"FeatureSpec.objects must be a list"),
    ("spec-derived-string", lambda a: FeatureSpec(["a"], derived="m"), r"FeatureSpec.derived must be a list"),
    ("slots-prefix-int", lambda a: ObjectSlots("photons", 2, prefix=5), r"ObjectSlots.prefix must be"),
    ("slots-sort-by-int", lambda a: ObjectSlots("photons", 2, sort_by=5), r"ObjectSlots.sort_by must be"),
    (
        "derived-indices-int",
        lambda a: DerivedObservable("m", "pair_mass", "photons", indices=5),
        r"indices must be two distinct",
    ),
    (
        "derived-collection-int",
        lambda a: DerivedObservable("m", "pair_mass", 5),
        r"DerivedObservable 'm': collection must be",
    ),
    ("preprocessor-columns-string", lambda a: Preprocessor("a"), r"columns must be a list of column names"),
    ("preprocessor-columns-int", lambda a: Preprocessor(5), r"columns must be a list of column names"),
    ("preprocessor-fit-strings", lambda a: Preprocessor(["a"]).fit(np.array([["x"]])), r"must hold numbers"),
    ("preprocessor-from-dict-int", lambda a: Preprocessor.from_dict(5), r"preprocessing must be a JSON object"),
    (
        "preprocessor-schema-string",
        lambda a: Preprocessor.from_dict({"schema": "1", "columns": ["a"], "chains": {}}),
        r"preprocessing schema must be an integer",
    ),
    # fit
    (
        "fit-nonfinite",
        lambda a: Surrogate(["a"], training=TINY_TRAINING).fit(a.events, nonfinite="x"),
        r"nonfinite must be one of \['raise', 'drop'\]",
    ),
    (
        "fit-checkpoint-dir-int",
        lambda a: Surrogate(["a"], training=TINY_TRAINING).fit(a.events, checkpoint_dir=5),
        r"checkpoint_dir must be a path",
    ),
    # sample / sample_array / sample_batches
    ("sample-n-string", lambda a: a.unc.sample("10"), r"n must be an integer, got '10' \(str\)"),
    ("sample-n-float", lambda a: a.unc.sample(2.5), r"n must be an integer, got 2.5"),
    ("sample-n-whole-float", lambda a: a.unc.sample(5.0), r"n must be an integer, got 5.0"),
    ("sample-n-bool", lambda a: a.unc.sample(True), r"n must be an integer, got True"),
    ("sample-array-n-string", lambda a: a.unc.sample_array("10"), r"n must be an integer"),
    ("sample-batches-n-string", lambda a: list(a.unc.sample_batches("10")), r"n must be an integer"),
    ("sample-n-string-conditional", lambda a: a.cond.sample("2", a.events[:2]), r"n must be an integer"),
    ("sample-seed-string", lambda a: a.unc.sample(5, seed="a"), r"seed must be a non-negative integer"),
    ("sample-seed-float", lambda a: a.unc.sample(5, seed=1.5), r"seed must be a non-negative integer"),
    ("sample-seed-negative", lambda a: a.unc.sample(5, seed=-1), r"seed must be a non-negative integer"),
    ("sample-batch-size-string", lambda a: a.unc.sample(5, batch_size="a"), r"batch_size must be an integer"),
    ("sample-batch-size-float", lambda a: a.unc.sample(5, batch_size=2.5), r"batch_size must be an integer"),
    ("sample-noise-nan", lambda a: a.unc.sample(2, noise=np.full((2, 2), np.nan)), r"noise holds 4 non-finite"),
    ("sample-noise-string", lambda a: a.unc.sample(2, noise="x"), r"noise must hold numbers"),
    ("conditions-flat-list", lambda a: a.cond.sample(conditions=[1.0, 2.0]), r"conditions must have shape \(n, 1\)"),
    ("conditions-int", lambda a: a.cond.sample(conditions=5), r"conditions must be an awkward record array"),
    ("conditions-string", lambda a: a.cond.sample(conditions="mu"), r"conditions must be an awkward record array"),
    ("conditions-string-array", lambda a: a.cond.sample(conditions=np.array([["a"]])), r"conditions must hold num"),
    ("conditions-mapping-scalar", lambda a: a.cond.sample(conditions={"mu": 5}), r"conditions.*one array per column"),
    (
        "conditions-dataframe-missing",
        lambda a: a.cond.sample(conditions=pd.DataFrame({"x": [1.0]})),
        r"lack column\(s\) \['mu'\]",
    ),
    (
        "conditions-dataframe-strings",
        lambda a: a.cond.sample(conditions=pd.DataFrame({"mu": ["a"]})),
        r"condition column 'mu'.*not numbers",
    ),
    ("conditions-series", lambda a: a.cond.sample(conditions=pd.Series([1.0], name="mu")), r"pandas Series"),
    ("distill-conditions-list", lambda a: a.cond.distill(conditions=[1.0]), r"conditions must have shape"),
    ("distill-config-int", lambda a: a.cond.distill(a.events, config=5), r"config must be a DistillConfig"),
    # save / load
    ("load-none", lambda a: Surrogate.load(None), r"path must be a path.*got None"),
    ("load-int", lambda a: Surrogate.load(5), r"path must be a path"),
    ("load-device-int", lambda a: Surrogate.load(a.model_dir, device=5), r"device must be a string"),
    ("save-none", lambda a: a.cond.save(None), r"path must be a path"),
    ("save-overwrite-string", lambda a: a.cond.save(a.model_dir, overwrite="no"), r"overwrite must be True or False"),
    # response
    ("train-response-dataframe", lambda a: train_response(pd.DataFrame({"a": [1.0]})), r"smeared.*awkward record"),
    ("train-response-none", lambda a: train_response(None), r"smeared.*awkward record"),
    ("train-response-flow-string", lambda a: train_response(a.smeared, "demo", flow="maf"), r"flow must be a dict"),
    (
        "train-response-training-int",
        lambda a: train_response(a.smeared, "demo", training=5),
        r"training must be a dict",
    ),
    ("train-response-layout-dict", lambda a: train_response(a.smeared, layout={"n": 2}), r"layout must be a Respo"),
    ("response-layout-n-string", lambda a: ResponseLayout(n="2"), r"ResponseLayout.n must be an integer"),
    ("response-layout-n-zero", lambda a: ResponseLayout(n=0), r"ResponseLayout.n must be an integer ≥ 1"),
    ("response-layout-fields-string", lambda a: ResponseLayout(fields="pt"), r"ResponseLayout.fields must be a list"),
    ("response-surrogate-layout", lambda a: response_surrogate("demo", layout=5), r"layout must be a ResponseLayout"),
    ("apply-response-model-none", lambda a: apply_response(None, a.truth), r"model must be a Surrogate"),
    ("apply-response-model-path", lambda a: apply_response("model_dir", a.truth), r"Surrogate.load\('model_dir'\)"),
    ("apply-response-truth-int", lambda a: apply_response(a.response, 5), r"truth.*awkward record array"),
    ("apply-response-truth-df", lambda a: apply_response(a.response, pd.DataFrame({"mu": [1.0]})), r"truth.*awkward"),
    ("apply-response-seed", lambda a: apply_response(a.response, a.truth[:5], seed="a"), r"seed must be a non-neg"),
    ("apply-response-batch", lambda a: apply_response(a.response, a.truth[:5], batch_size="a"), r"batch_size must"),
    ("apply-response-layout", lambda a: apply_response(a.response, a.truth[:5], layout=5), r"layout must be a Resp"),
    ("distill-response-model", lambda a: distill_response(None, a.truth), r"model must be a Surrogate"),
    ("distill-response-truth", lambda a: distill_response(a.response, 5), r"truth.*awkward record array"),
    # refinement
    ("reweighting-features-string", lambda a: fit_reweighting(a.ref, a.gen, "xy"), r"features must be a list.*'xy'"),
    ("reweighting-features-int", lambda a: fit_reweighting(a.ref, a.gen, 5), r"features must be a list"),
    (
        "reweighting-reference-none",
        lambda a: fit_reweighting(None, a.gen, ["x", "y"]),
        r"reference events must be.*got None",
    ),
    (
        "reweighting-reference-strings",
        lambda a: fit_reweighting(np.array([["a", "b"]]), a.gen, ["x", "y"]),
        r"reference events must hold numbers",
    ),
    ("reweighting-clip-string", lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], clip="20"), r"clip must be a num"),
    ("reweighting-clip-inf", lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], clip=np.inf), r"clip must be a fin"),
    (
        "reweighting-learning-rate",
        lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], learning_rate="x"),
        r"learning_rate must be a number",
    ),
    ("reweighting-folds-float", lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], folds=2.5), r"folds must be an i"),
    ("reweighting-seed-string", lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], seed="a"), r"seed must be a non"),
    ("reweighting-seed-negative", lambda a: fit_reweighting(a.ref, a.gen, ["x", "y"], seed=-1), r"seed must be a no"),
    ("surrogate-reweighting-model", lambda a: fit_surrogate_reweighting(None, a.events), r"model must be a Surrogate"),
    ("surrogate-reweighting-factor", lambda a: fit_surrogate_reweighting(a.cond, a.events, factor=True), r"factor mu"),
    ("surrogate-reweighting-seed", lambda a: fit_surrogate_reweighting(a.cond, a.events, seed="a"), r"seed must be"),
    ("reweighting-weights-dict-strings", lambda a: a.reweighting.weights({"x": ["a"], "y": [1.0]}), r"'x'.*numbers"),
    ("reweighting-weights-strings", lambda a: a.reweighting.weights(np.array([["a", "b"]])), r"must hold numbers"),
    ("reweighting-weights-int", lambda a: a.reweighting.weights(5), r"generated events must be.*got 5 \(int\)"),
    ("reweighting-load-none", lambda a: Reweighting.load(None), r"path must be a path"),
    ("reweighting-save-none", lambda a: a.reweighting.save(None), r"path must be a path"),
]


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES])
def test_wrong_types_raise_a_domain_error_naming_the_parameter(
    api: SimpleNamespace, call: Callable[[SimpleNamespace], Any], message: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. conditions outside the training range: not what is tested here
        with pytest.raises(MCSurrogateError, match=message) as info:
            call(api)
    assert isinstance(info.value, (InputError, ModelDirectoryError)), type(info.value)


# wrong types of the statistics, validation and flow-configuration layers: no trained model needed
_RNG = np.random.default_rng(7)
_VALUES = _RNG.uniform(0, 1, 400)
_REF, _CAN = _RNG.normal(size=(60, 2)), _RNG.normal(size=(60, 2))


def _templates() -> tuple[hist.Hist, hist.Hist, np.ndarray]:
    s = fill_template(_RNG.normal(0.5, 0.1, 500), bins=10, range=(0, 1))
    b = fill_template(_RNG.uniform(0, 1, 2000), bins=10, range=(0, 1))
    return s, b, b.values()


def _workspace(**kw: Any) -> Any:
    s, b, obs = _templates()
    args = {"signal": s, "background": b, "observed": obs} | kw
    return build_workspace(args.pop("signal"), args.pop("background"), args.pop("observed"), **args)


LightCase = tuple[str, Callable[[], Any], str]

LIGHT_WRONG_TYPES: list[LightCase] = [
    # fill_template
    (
        "template-bins-string",
        lambda: fill_template(_VALUES, bins="ten", range=(0, 1)),
        r"bins must be an integer.*'ten'",
    ),
    ("template-bins-zero", lambda: fill_template(_VALUES, bins=0, range=(0, 1)), r"bins must be an integer ≥ 1, got 0"),
    ("template-bins-negative", lambda: fill_template(_VALUES, bins=-4, range=(0, 1)), r"bins must be an integer ≥ 1"),
    ("template-bins-float", lambda: fill_template(_VALUES, bins=2.5, range=(0, 1)), r"bins must be an integer.*2.5"),
    ("template-bins-bool", lambda: fill_template(_VALUES, bins=True, range=(0, 1)), r"bins must be an integer.*True"),
    ("template-bins-none", lambda: fill_template(_VALUES, bins=None, range=(0, 1)), r"bins must be an integer.*None"),
    ("template-edges-strings", lambda: fill_template(_VALUES, bins=["a", "b"]), r"bin edges.*must hold numbers"),
    ("template-edges-nan", lambda: fill_template(_VALUES, bins=[0, np.nan, 1]), r"bin edges.*strictly increasing"),
    ("template-range-string", lambda: fill_template(_VALUES, bins=10, range="ab"), r"range must be two numbers"),
    ("template-range-int", lambda: fill_template(_VALUES, bins=10, range=5), r"range must be two numbers.*5 \(int\)"),
    ("template-range-three", lambda: fill_template(_VALUES, bins=10, range=(0, 1, 2)), r"range must be two numbers"),
    (
        "template-range-reversed",
        lambda: fill_template(_VALUES, bins=10, range=(1, 0)),
        r"range.*low < high.*\(1.0, 0.0",
    ),
    ("template-range-nan", lambda: fill_template(_VALUES, bins=10, range=(np.nan, 1)), r"range must be two finite"),
    ("template-values-string", lambda: fill_template("abc", bins=10, range=(0, 1)), r"template values.*must hold num"),
    (
        "template-values-string-array",
        lambda: fill_template(np.array(["0.1", "0.2"]), bins=10, range=(0, 1)),
        r"template values for 'x' must hold numbers",
    ),
    (
        "template-weights-length",
        lambda: fill_template(_VALUES, bins=10, range=(0, 1), weights=np.ones(5)),
        r"weights for 'x' have shape \(5,\) for 400 values",
    ),
    (
        "template-weights-column",
        lambda: fill_template(_VALUES, bins=10, range=(0, 1), weights=np.ones((400, 1))),
        r"weights for 'x' have shape \(400, 1\) for 400 values",
    ),
    (
        "template-weights-strings",
        lambda: fill_template(_VALUES, bins=10, range=(0, 1), weights=np.array(["a"] * 400)),
        r"weights for 'x' must hold numbers",
    ),
    # build_workspace
    ("workspace-systematic-string", lambda: _workspace(systematic="10%"), r"systematic.*must be a number.*'10%'"),
    ("workspace-systematic-negative", lambda: _workspace(systematic=-0.1), r"systematic.*must be ≥ 0.0, got -0.1"),
    ("workspace-systematic-one", lambda: _workspace(systematic=1.0), r"systematic.*must be < 1.0, got 1.0"),
    ("workspace-observed-string", lambda: _workspace(observed="x"), r"observed \(counts per bin\) must hold numbers"),
    (
        "workspace-observed-none",
        lambda: _workspace(observed=None),
        r"observed \(counts per bin\) must be an array of numbers, got None",
    ),
    (
        "workspace-signal-array",
        lambda: _workspace(signal=_templates()[0].values()),
        r"the signal template must be a hist.Hist.*fill_template.*got a numpy array of shape \(10,\)",
    ),
    ("workspace-background-none", lambda: _workspace(background=None), r"background template must be a hist.Hist"),
    ("workspace-channel-int", lambda: _workspace(channel=5), r"channel must be a non-empty string, got 5 \(int\)"),
    ("workspace-channel-empty", lambda: _workspace(channel=""), r"channel must be a non-empty string"),
    ("workspace-staterror-string", lambda: _workspace(staterror="no"), r"staterror must be True or False, got 'no'"),
    ("workspace-signal-staterror", lambda: _workspace(signal_staterror="no"), r"signal_staterror must be True or F"),
    ("workspace-empty-bins", lambda: _workspace(empty_bins="x"), r"empty_bins must be one of \['error', 'floor'\]"),
    ("workspace-kind-list", lambda: _workspace(systematic_kind=["normsys"]), r"systematic_kind must be one of"),
    ("asimov-signal-array", lambda: asimov_counts(np.ones(10), _templates()[1]), r"signal template must be a hist"),
    # c2st
    ("c2st-level-string", lambda: c2st(_REF, _CAN, level="a"), r"level must be a number, got 'a'"),
    ("c2st-level-large", lambda: c2st(_REF, _CAN, level=1.5), r"level must be < 1.0, got 1.5"),
    ("c2st-max-events-string", lambda: c2st(_REF, _CAN, max_events="a"), r"max_events.*must be an integer, got 'a'"),
    ("c2st-max-events-zero", lambda: c2st(_REF, _CAN, max_events=0), r"max_events.*must be an integer ≥ 1, got 0"),
    ("c2st-seed-string", lambda: c2st(_REF, _CAN, seed="a"), r"seed must be a non-negative integer, got 'a'"),
    ("c2st-seed-negative", lambda: c2st(_REF, _CAN, seed=-1), r"seed must be a non-negative integer, got -1"),
    ("c2st-repeats-bool", lambda: c2st(_REF, _CAN, n_repeats=True), r"n_repeats must be an integer, got True"),
    ("c2st-permutations-negative", lambda: c2st(_REF, _CAN, n_permutations=-1), r"n_permutations=-1 cannot give"),
    ("c2st-permutations-float", lambda: c2st(_REF, _CAN, n_permutations=200.0), r"n_permutations must be an integer"),
    ("c2st-bootstrap-string", lambda: c2st(_REF, _CAN, n_bootstrap="a"), r"n_bootstrap.*must be an integer"),
    ("c2st-reference-strings", lambda: c2st(_REF.astype(str), _CAN), r"reference must hold numbers"),
    ("c2st-candidate-string", lambda: c2st(_REF, "abc"), r"candidate must hold numbers"),
    (
        "c2st-one-dimensional-against-two-features",
        lambda: c2st(_REF[:, 0], _CAN),
        r"reference is 1-D.*one feature.*candidate has 2 features",
    ),
    ("c2st-features-mismatch", lambda: c2st(_REF, _RNG.normal(size=(60, 3))), r"candidate has 3 features.*has 2"),
    ("c2st-weights-strings", lambda: c2st(_REF, _CAN, weights_reference=["a"] * 60), r"weights_reference must hold"),
    (
        "correlations-numeric-strings",
        lambda: compare_correlations(_REF.astype(str), _CAN, ["a", "b"]),
        r"reference must hold",
    ),
    ("fpd-strings", lambda: fpd(_REF, _CAN.astype(str)), r"candidate must hold numbers"),
    # FlowConfig, DistillConfig
    ("flow-tail-bound-string", lambda: FlowConfig(tail_bound="x"), r"'tail_bound' must be a number, got 'x'"),
    ("flow-tail-bound-zero", lambda: FlowConfig(tail_bound=0), r"'tail_bound' must be > 0.0, got 0.0"),
    ("flow-from-dict-int", lambda: FlowConfig.from_dict(5), r"flow must be a dict of FlowConfig fields, got 5"),
    ("flow-model-list", lambda: FlowConfig(model=["maf"]), r"'model' must be a family name.*got \['maf'\] \(list\)"),
    ("flow-activation-list", lambda: FlowConfig(activation=["relu"]), r"'activation' must be one of"),
    ("flow-permutation-int", lambda: FlowConfig(permutation=5), r"'permutation' must be one of"),
    ("flow-blocks-bool", lambda: FlowConfig(blocks=True), r"'blocks' must be an integer, got True"),
    ("flow-blocks-zero", lambda: FlowConfig(blocks=0), r"'blocks' must be an integer ≥ 1, got 0"),
    ("flow-residual-string", lambda: FlowConfig(residual="no"), r"'residual' must be True or False, got 'no'"),
    ("flow-batch-norm-int", lambda: FlowConfig(batch_norm=1), r"'batch_norm' must be True or False, got 1"),
    ("flow-permutation-seed", lambda: FlowConfig(permutation_seed="a"), r"'permutation_seed' must be an integer"),
    ("flow-permutation-seed-neg", lambda: FlowConfig(permutation_seed=-1), r"'permutation_seed' must be an int.*≥ 0"),
    ("flow-affine-blocks-bool", lambda: FlowConfig(model="rqs-ar", affine_blocks=True), r"'affine_blocks' must be"),
    ("distill-lr-string", lambda: DistillConfig(lr="x"), r"distillation parameter 'lr' must be a number, got 'x'"),
    ("distill-lr-zero", lambda: DistillConfig(lr=0), r"distillation parameter 'lr' must be > 0.0"),
    ("distill-seed-string", lambda: DistillConfig(seed="a"), r"distillation parameter 'seed' must be an integer"),
    ("distill-seed-negative", lambda: DistillConfig(seed=-1), r"distillation parameter 'seed' must be an integer ≥ 0"),
    ("distill-validation-string", lambda: DistillConfig(validation_fraction="x"), r"'validation_fraction' must be a n"),
    ("distill-epochs-bool", lambda: DistillConfig(epochs=True), r"distillation parameter 'epochs' must be an integer"),
    ("distill-from-dict-int", lambda: DistillConfig.from_dict(5), r"distillation must be a dict of DistillConfig"),
]


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in LIGHT_WRONG_TYPES], ids=[c[0] for c in LIGHT_WRONG_TYPES])
def test_wrong_types_of_stats_validation_and_flow_configs_name_the_parameter(
    call: Callable[[], Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        call()


def test_well_typed_stats_validation_and_flow_calls_still_work() -> None:
    """The checks accept what the documentation promises: numpy integers and floats, lists of numbers, a 1-D
    sample against a 1-D sample (one feature), a JSON round trip of the configurations with plain types."""
    h = fill_template(list(_VALUES), bins=np.int64(10), range=[np.float32(0), 1])
    assert h.axes[0].size == 10 and h.sum().value == 400
    assert fill_template(_VALUES, bins=[0, 0.5, 1]).axes[0].size == 2
    s, b, obs = _templates()
    ws = build_workspace(s, b, list(obs), systematic=np.float64(0.1), staterror=np.True_, channel="sr")
    assert [c["name"] for c in dict(ws)["channels"]] == ["sr"]
    result = c2st(_REF[:, 0], _CAN[:, 0], n_permutations=19, n_repeats=2, max_events=np.int64(50), seed=np.int64(1))
    assert result.n_reference == 50 and 0 <= result.auc <= 1
    flow = FlowConfig(blocks=np.int64(2), tail_bound=np.float32(3.0), permutation_seed=np.int64(4))
    assert json.loads(json.dumps(flow.to_dict())) == flow.to_dict()
    assert type(flow.blocks) is int and type(flow.tail_bound) is float and FlowConfig.from_dict(flow.to_dict()) == flow
    distill = DistillConfig(lr=np.float32(1e-3), seed=np.int64(3), epochs=np.int64(2))
    assert json.loads(json.dumps(distill.to_dict())) == distill.to_dict()


def test_a_pandas_dataframe_is_accepted_as_conditions(api: SimpleNamespace) -> None:
    """Converted by column name (any column order, extra columns ignored, integer columns as numbers)."""
    mu = np.array([1.0, 7.5, 20.0, 33.0])
    frame = pd.DataFrame({"other": ["p", "q", "r", "s"], "mu": mu})
    expected = api.cond.sample(conditions=ak.zip({"mu": mu}), seed=4)
    got = api.cond.sample(conditions=frame, seed=4)
    assert got.fields == expected.fields
    for field in got.fields:
        np.testing.assert_array_equal(ak.to_numpy(got[field]), ak.to_numpy(expected[field]))
    np.testing.assert_array_equal(
        api.cond.sample_array(conditions=pd.DataFrame({"mu": [1, 20]}), seed=1),
        api.cond.sample_array(conditions=np.array([[1.0], [20.0]]), seed=1),
    )
    nullable = pd.DataFrame({"mu": pd.array([1.0, None], dtype="Float64")})
    with pytest.raises(InputError, match=r"non-finite condition values.*'mu': 1"):
        api.cond.sample(conditions=nullable)


def test_reweighting_weights_of_a_dataframe_follow_the_column_names(api: SimpleNamespace) -> None:
    """A DataFrame whose columns are in another order than the features gets the same weights (not the columns'
    positions)."""
    x = np.column_stack([ak.to_numpy(api.gen.x[:50]), ak.to_numpy(api.gen.y[:50])])
    frame = pd.DataFrame({"y": x[:, 1], "x": x[:, 0], "extra": np.zeros(50)})
    np.testing.assert_array_equal(api.reweighting.weights(frame), api.reweighting.weights(x))


# -- item 7: inputs that train nonsense ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("n_jets", np.arange(800) % 5),
        ("tagged", np.arange(800) % 2 == 0),
        ("count32", (np.arange(800) % 7).astype("i4")),
    ],
)
def test_integer_and_boolean_targets_are_refused(column: str, values: np.ndarray) -> None:
    events = ak.with_field(correlated_events(800, seed=1), values, column)
    with pytest.raises(InputError, match=rf"target column '{column}' holds (integers|booleans).*cast it to float"):
        Surrogate(["a", column], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, progress=False)


def test_integer_conditions_and_float_cast_targets_train() -> None:
    """Discrete conditions are fine (docs/amplification.md); an integer column cast to float explicitly trains."""
    events = correlated_events(800, seed=1)
    n_jets = np.arange(800) % 5
    events = ak.with_field(ak.with_field(events, n_jets, "n_jets"), n_jets.astype(np.float64), "n_jets_float")
    model = Surrogate(["a", "n_jets_float"], ["n_jets"], flow=TINY_FLOW, training=TINY_TRAINING)
    model.fit(events, progress=False)
    assert model.sample(conditions=events[:10], seed=0).fields == ["a", "n_jets_float", "n_jets"]


def test_extreme_outliers_in_training_data_are_reported_by_row() -> None:
    events = correlated_events(5000, seed=2)
    a = ak.to_numpy(events.a).copy()
    a[[17, 2500, 4999]] = [1e30, -1e30, 1e30]
    events = ak.with_field(events, a, "a")
    with pytest.warns(UserWarning, match=r"3 of 5000 training events.*'a'.*rows \[17, 2500, 4999\]") as record:
        Surrogate(["a", "b"], ["mu"], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, progress=False)
    assert len([w for w in record if "robust z-score" in str(w.message)]) == 1


def test_outlier_rows_are_rows_of_the_events_given_even_after_drops() -> None:
    """Row numbers count the events passed to fit, also when rows with NaN were dropped before."""
    events = correlated_events(3000, seed=3)
    b = ak.to_numpy(events.b).copy()
    b[[0, 1, 2]] = np.nan
    b[1000] = 5e25
    events = ak.with_field(events, b, "b")
    with pytest.warns(UserWarning, match=r"1 of 2997 training events.*'b'.*rows \[1000\]"):
        Surrogate(["a", "b"], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, nonfinite="drop", progress=False)


def test_heavy_tails_and_atoms_are_not_outliers() -> None:
    """Physics-like tails (exponential p_T, log-normal masses, a Cauchy-like response) and a column with an atom
    (half its events at one value) train without an outlier warning."""
    rng = np.random.default_rng(5)
    n = 100_000
    atom = np.where(rng.random(n) < 0.6, 80.4, rng.normal(80.4, 30, n))
    events = ak.zip(
        {
            "pt": 25 + rng.exponential(40, n),
            "m": np.exp(rng.normal(5, 1, n)),
            "delta": rng.standard_t(3, n),
            "m_lv": atom,
        }
    )
    from mcsurrogate.preprocessing import extreme_outliers

    x = np.column_stack([ak.to_numpy(events[c]) for c in events.fields])
    assert extreme_outliers(x, events.fields) == {}


# -- item 8: model files ---------------------------------------------------------------------------------------------
def _tampered(source: Path, dest: Path, file: str, change: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(source, dest)
    data = json.loads((dest / file).read_text())
    change(data)
    (dest / file).write_text(json.dumps(data))
    return dest


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(data: dict[str, Any]) -> None:
        for k in keys[:-1]:
            data = data[k]
        data[keys[-1]] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(data: dict[str, Any]) -> None:
        for k in keys[:-1]:
            data = data[k]
        del data[keys[-1]]

    return change


CONFIG_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("version-0", _set("schema_version", 0), r"schema_version 0 is not a model schema.*1 to 4"),
    ("version-negative", _set("schema_version", -5), r"schema_version -5 is not a model schema"),
    ("version-missing", _delete("schema_version"), r"config.json has no 'schema_version'"),
    ("version-string", _set("schema_version", "1"), r"schema_version must be an integer.*got '1' \(str\)"),
    ("version-bool", _set("schema_version", True), r"schema_version must be an integer.*got True"),
    ("flow-model-missing", _delete("flow.model"), r"config.json: 'flow.model' is missing"),
    ("flow-model-unknown", _set("flow.model", "nope"), r"'flow.model': 'nope' is not one of \['maf'"),
    ("flow-missing", _delete("flow"), r"config.json: 'flow' is missing"),
    ("flow-not-object", _set("flow", "maf"), r"'flow': 'maf' is not of type 'object'"),
    ("flow-blocks-string", _set("flow.blocks", "3"), r"'flow.blocks': '3' is not of type 'integer'"),
    ("flow-unknown-key", _set("flow.bogus", 1), r"'flow': .*'bogus' was unexpected"),
    ("spec-missing", _delete("spec"), r"'spec' is missing"),
    ("spec-targets-string", _set("spec.targets", "a"), r"'spec.targets': 'a' is not of type 'array'"),
    ("training-lr-string", _set("training.lr", "fast"), r"'training.lr': 'fast' is not of type 'number'"),
    ("training-not-object", _set("training", 5), r"'training': 5 is not of type 'object'"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_tampered_config_json_is_refused_naming_the_key(
    api: SimpleNamespace, tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    d = _tampered(api.model_dir, tmp_path / "m", "config.json", change)
    with pytest.raises(ModelDirectoryError, match=message):
        Surrogate.load(d)


def test_untampered_model_still_loads(api: SimpleNamespace) -> None:
    back = Surrogate.load(api.model_dir, device="cpu")
    np.testing.assert_array_equal(
        back.sample_array(conditions=api.events[:20], seed=3), api.cond.sample_array(conditions=api.events[:20], seed=3)
    )


REWEIGHTING_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("normalisation-zero", _set("normalisation", 0), r"'normalisation' must be a finite number > 0, got 0"),
    ("normalisation-negative", _set("normalisation", -1.0), r"'normalisation' must be a finite number > 0"),
    ("normalisation-nan", _set("normalisation", "nan"), r"'normalisation' must be a finite number > 0, got 'nan'"),
    ("clip-below-one", _set("clip", 0.5), r"'clip' must be a finite number > 1, got 0.5"),
    ("kish-above-one", _set("kish_efficiency", 7), r"'kish_efficiency' must be a number in \(0, 1\], got 7"),
    ("n-reference-negative", _set("n_reference", -5), r"'n_reference' must be a positive integer, got -5"),
    ("n-generated-float", _set("n_generated", 1.5), r"'n_generated' must be a positive integer, got 1.5"),
    ("version-string", _set("schema_version", "1"), r"schema_version must be an integer.*got '1' \(str\)"),
    ("version-0", _set("schema_version", 0), r"schema_version 0 is not a reweighting schema"),
    ("version-missing", _delete("schema_version"), r"reweighting.json has no 'schema_version'"),
    ("features-string", _set("features", "xy"), r"'features' must be a list of column names"),
    ("features-ints", _set("features", [1, 2]), r"'features' must be a list of column names"),
    ("features-duplicate", _set("features", ["x", "x"]), r"'features' lists \['x'\] more than once"),
    ("prior-ratio-zero", _set("density_ratio.prior_ratio", 0), r"'density_ratio.prior_ratio' must be a finite num"),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in REWEIGHTING_CASES], ids=[c[0] for c in REWEIGHTING_CASES]
)
def test_tampered_reweighting_json_is_refused_naming_the_key(
    api: SimpleNamespace, tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    d = _tampered(api.reweighting_dir, tmp_path / "rw", "reweighting.json", change)
    with pytest.raises(ModelDirectoryError, match=message):
        Reweighting.load(d)


# -- item 2: a checkpoint directory has one writer -------------------------------------------------------------------
_HOLD_LOCK = """
import sys
from mcsurrogate.files import output_lock
with output_lock(sys.argv[1], purpose="Surrogate.fit, checkpoints in " + sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_fit_into_a_checkpoint_dir_in_use_is_refused_naming_it(tmp_path: Path) -> None:
    """Another process holds the checkpoint directory's lock (as a running ``fit(checkpoint_dir=...)`` does): a
    second fit into it stops with an error naming the directory, before it writes a checkpoint there; once the other
    process ends, the same fit runs and checkpoints."""
    ckpt = tmp_path / "ckpt"
    events = correlated_events(300, seed=4)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(ckpt)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputExistsError, match=rf"{re.escape(str(ckpt))} is being written by another process"):
            Surrogate(["a", "b"], flow=TINY_FLOW, training=TINY_TRAINING).fit(
                events, checkpoint_dir=ckpt, progress=False
            )
        assert not (ckpt / "last.safetensors").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    Surrogate(["a", "b"], flow=TINY_FLOW, training=TINY_TRAINING).fit(events, checkpoint_dir=ckpt, progress=False)
    assert (ckpt / "last.safetensors").is_file()
    assert not (tmp_path / ".ckpt.lock").exists()


def test_training_config_keeps_plain_numbers_so_that_it_is_json() -> None:
    """numpy numbers (a grid scan's np.arange, a config read by pandas) are checked and stored as Python numbers."""
    cfg = TrainConfig(epochs=np.int64(2), batch_size=np.int32(64), lr=np.float32(1e-3), ema_decay=np.float64(0.9))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert (d["epochs"], d["batch_size"], d["ema_decay"]) == (2, 64, 0.9)
    assert type(cfg.epochs) is int and type(cfg.lr) is float
