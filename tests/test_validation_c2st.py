"""C2ST intervals that say what they cover, and a verdict that never contradicts them (issue 27, item 8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.validation import C2STResult, c2st
from mcsurrogate.validation.c2st import minimum_permutations


def _correlation_change(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A weak, purely joint difference: the correlation of two unit Gaussians goes from 0 to 0.15."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, 2))
    can = rng.multivariate_normal([0, 0], [[1, 0.15], [0.15, 1]], n)
    return ref, can


def test_too_few_permutations_for_the_level_are_refused():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    assert minimum_permutations(0.05) == 19 and minimum_permutations(0.01) == 99
    with pytest.raises(InputError, match="at least 19"):
        c2st(a, b, n_permutations=5)
    with pytest.raises(InputError, match="at least 99"):
        c2st(a, b, n_permutations=50, level=0.01)
    with pytest.raises(InputError, match="level"):
        c2st(a, b, level=1.5)
    with pytest.raises(InputError, match="n_repeats"):
        c2st(a, b, n_repeats=0)


def test_the_smallest_attainable_p_value_is_reported():
    rng = np.random.default_rng(1)
    r = c2st(rng.normal(size=(2_000, 2)), rng.normal(1.5, size=(2_000, 2)), n_permutations=19, n_repeats=2)
    assert r.p_value == pytest.approx(1 / 20) and r.p_value_min == pytest.approx(1 / 20)
    assert r.decision == "distinguishable"
    assert "smallest attainable with 19 permutations" in r.summary()
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["p_value_min"] == pytest.approx(0.05) and d["n_permutations"] == 19 and d["level"] == 0.05


def test_the_verdict_never_contradicts_the_interval():
    """The issue's report: 'AUC 0.7003 [0.686, 0.713], p = 0.167 (consistent with 0.5)'. An interval far above
    0.5 is never called consistent with 0.5, and an interval that contains 0.5 is never called distinguishable."""

    def result(ci: tuple[float, float], p: float) -> C2STResult:
        return C2STResult(0.5 * sum(ci), ci, 0.6, p, 1000, 1000, "hgb", n_permutations=200, auc_repeats=[0.7, 0.7])

    far = result((0.686, 0.713), 0.167)
    assert far.decision == "inconclusive" and "consistent" not in far.summary()
    assert "interval excludes 0.5" in far.summary()
    near = result((0.498, 0.51), 0.01)
    assert near.decision == "inconclusive" and "interval includes 0.5" in near.summary()
    assert result((0.51, 0.53), 0.005).decision == "distinguishable"
    assert result((0.49, 0.51), 0.4).decision == "consistent with 0.5"


def test_the_interval_covers_the_training_variance():
    """Another split and training seed gives another classifier and another AUC. The interval of repeated
    classifiers is the Nadeau-Bengio corrected resampled t interval of their AUCs, it contains the AUC averaged
    over many classifiers, and each interval says what it covers."""
    from scipy import stats

    ref, can = _correlation_change(6_000, seed=2)
    repeated = [c2st(ref, can, n_permutations=19, n_bootstrap=50, n_repeats=5, seed=s) for s in range(6)]
    single = [c2st(ref, can, n_permutations=19, n_bootstrap=200, n_repeats=1, seed=s) for s in range(10, 16)]
    r = repeated[0]
    half = stats.t.ppf(0.975, 4) * np.std(r.auc_repeats, ddof=1) * np.sqrt(1 / 5 + 1)
    assert r.auc == pytest.approx(np.mean(r.auc_repeats), abs=1e-12)
    assert r.auc_ci == pytest.approx((r.auc - half, r.auc + half), abs=1e-12)
    aucs = [a for x in repeated for a in x.auc_repeats] + [x.auc for x in single]
    centre = float(np.mean(aucs))
    covered = sum(x.auc_ci[0] <= centre <= x.auc_ci[1] for x in repeated)
    assert covered >= 5, (centre, [x.auc_ci for x in repeated])
    # one classifier's bootstrap interval: its width is the test-set spread alone
    s = single[0]
    assert s.auc_ci[1] - s.auc_ci[0] == pytest.approx(2 * 1.96 * s.auc_sd_test, rel=0.25)
    assert "training and test-set variance" in r.ci_covers
    assert "test-set variance of one trained classifier only" in s.ci_covers
    assert "training + test variance" in r.summary() and "test-set variance only" in s.summary()


# -- one two-sample classifier for the C2ST, the density ratio and the classifier cut (issue 33 item 5) ---------
def test_one_classifier_factory_gives_each_kind_one_set_of_hyper_parameters():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    from mcsurrogate.validation.classifiers import DEFAULTS, two_sample_classifier

    hgb = two_sample_classifier("hgb", 3)
    assert isinstance(hgb, HistGradientBoostingClassifier) and hgb.random_state == 3
    assert {k: hgb.get_params()[k] for k in DEFAULTS["hgb"]} == dict(DEFAULTS["hgb"]) and hgb.max_iter == 300
    mlp = two_sample_classifier("mlp", 4)
    net = mlp.steps[-1][1]
    assert isinstance(net, MLPClassifier) and net.hidden_layer_sizes == (64, 64) and net.random_state == 4
    assert two_sample_classifier("hgb", 0, max_iter=7, learning_rate=0.2).get_params()["max_iter"] == 7
    with pytest.raises(InputError, match="'hgb', 'mlp'"):
        two_sample_classifier("svm", 0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no hyper-parameter max_depthh"):
        two_sample_classifier("hgb", 0, max_depthh=3)
    with pytest.raises(InputError, match="seed"):
        two_sample_classifier("mlp", 0, random_state=1)


@pytest.mark.parametrize("kind", ["hgb", "mlp"])
def test_event_weights_enter_the_fit_of_either_kind(kind):
    from mcsurrogate.validation.classifiers import fit_classifier, two_sample_classifier

    # the label is the sign of x0; a third of the events carry the opposite label and weight 0
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3_000, 2))
    y = (x[:, 0] > 0).astype(float)
    noise = rng.random(3_000) < 1 / 3
    y[noise] = 1 - y[noise]
    w = np.where(noise, 0.0, 1.0)
    model = two_sample_classifier(kind, 0)
    assert fit_classifier(model, x, y, w)
    test = rng.normal(size=(2_000, 2))
    accuracy = np.mean(model.predict(test) == (test[:, 0] > 0))
    unweighted = two_sample_classifier(kind, 0)
    fit_classifier(unweighted, x, y)
    soft = unweighted.predict_proba(test)[:, 1]
    weighted = model.predict_proba(test)[:, 1]
    # with the noisy events out the scores are far surer of themselves than with them in (at most 2/3 there)
    assert accuracy > 0.97 and np.mean(np.abs(weighted - 0.5)) > np.mean(np.abs(soft - 0.5)) + 0.1


def test_the_density_ratio_and_the_cut_use_the_factory_s_classifiers():
    from mcsurrogate.stats import train_signal_classifier
    from mcsurrogate.stats.classifier_cut import PAPER_B_MLP
    from mcsurrogate.validation import fit_density_ratio
    from mcsurrogate.validation.classifiers import DEFAULTS

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 2)), rng.normal(0.5, 1.0, size=(400, 2))
    ratio = fit_density_ratio(a, b, seed=5)
    assert [m.get_params()["max_iter"] for m in ratio.models] == [DEFAULTS["hgb"]["max_iter"]] * 2
    assert [m.random_state for m in ratio.models] == [5, 6]
    smoother = fit_density_ratio(a, b, learning_rate=0.05, max_iter=20, seed=5)  # the reweighting's override
    assert {(m.learning_rate, m.max_iter) for m in smoother.models} == {(0.05, 20)}
    cut = train_signal_classifier(b, a, seed=1)
    assert cut.classifier.get_params()["max_iter"] == DEFAULTS["hgb"]["max_iter"] and cut.classifier.random_state == 1
    paper_b = train_signal_classifier(b[:100], a[:100], kind="mlp", seed=1).classifier.steps[-1][1]
    assert paper_b.hidden_layer_sizes == PAPER_B_MLP["hidden_layer_sizes"] and paper_b.activation == "logistic"
