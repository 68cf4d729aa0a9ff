from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mcsurrogate.errors import InputError
from mcsurrogate.preprocessing import (
    Atanh,
    BoundedMinMax,
    ColumnChain,
    GaussRank,
    Log,
    MinMaxLogit,
    Preprocessor,
    Scale,
    Standardize,
    make_transform,
)

RNG = np.random.default_rng(0)
DATA = {
    "skewed": RNG.exponential(30.0, 20000) + 20.0,  # E_T-like, GeV
    "heavy": RNG.standard_t(2.5, 20000),  # heavy tails
    "discrete": RNG.integers(0, 5, 20000).astype(float),  # ties
}
TRANSFORMS = [
    lambda: [Standardize()],
    lambda: [MinMaxLogit(), Standardize()],
    lambda: [GaussRank()],
    lambda: [BoundedMinMax()],
    lambda: [Scale(20.0), Standardize()],
]


@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("make", TRANSFORMS, ids=["standardize", "logit", "gauss-rank", "minmax", "scale"])
def test_round_trip_is_exact(kind: str, make) -> None:
    x = DATA[kind]
    chain = ColumnChain(make()).fit(x[:15000])  # fitted on a training part only
    inside = chain.in_domain(x)  # logit: bounded support, the training range widened by 5 %
    assert inside.mean() > 0.999
    x = x[inside]
    back = chain.inverse(chain.forward(x))
    np.testing.assert_allclose(back, x, rtol=1e-6, atol=1e-9 * np.abs(x).max())


def test_gauss_rank_is_normal_on_its_training_data_and_handles_outside_values() -> None:
    x = DATA["skewed"]
    g = GaussRank().fit(x)
    y = g.forward(x)
    assert abs(y.mean()) < 0.01 and y.std() == pytest.approx(1.0, abs=0.01)
    assert stats.kstest(y, "norm").pvalue > 0.01
    # the exponential tails are evaluated in log space: invertible and monotonic far beyond the fitted range too
    outside = np.array([x.min() - 100.0, x.min() - 1.0, x.min() - 1e-3, x.max() + 1e-3, x.max() + 1e4])
    y_out = g.forward(outside)
    assert np.isfinite(y_out).all() and (np.diff(y_out) > 0).all()
    assert y_out[2] < y.min() and y_out[3] > y.max()
    np.testing.assert_allclose(g.inverse(y_out), outside, rtol=1e-6)


def test_gauss_rank_subsample_is_seeded() -> None:
    x = DATA["heavy"]
    a, b, c = (GaussRank(n_quantiles=200, subsample=2000, seed=s).fit(x) for s in (1, 1, 2))
    assert np.array_equal(a.knots, b.knots) and not np.array_equal(a.knots, c.knots)
    np.testing.assert_allclose(a.inverse(a.forward(x)), x, rtol=1e-6, atol=1e-12)


def _w_mass_like(n: int, seed: int) -> np.ndarray:
    """70 % of the events exactly at m_W (a constraint), the rest an exponential tail above it (GeV)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.7, 80.385, 80.385 + rng.exponential(15.0, n))


def test_gauss_rank_dequantizes_an_atom_and_generates_it_exactly() -> None:
    x = _w_mass_like(20000, 1)
    g = GaussRank().fit(x)
    on = x == 80.385
    y = g.forward(x)
    # no spike: the atom's events are spread over its probability interval, and the whole column is normal
    assert len(np.unique(y[on])) == on.sum()
    assert stats.kstest(y, "norm").pvalue > 0.01
    np.testing.assert_array_equal(g.inverse(y)[on], x[on])  # back onto the value exactly, not near it
    np.testing.assert_allclose(g.inverse(y)[~on], x[~on], rtol=1e-9)
    # a perfect model of y (a standard normal) gives the atom with its probability and nothing below it
    z = g.inverse(np.random.default_rng(2).standard_normal(50000))
    assert (z == 80.385).mean() == pytest.approx(on.mean(), abs=0.01)
    assert (z < 80.385).mean() < 1e-3
    # on the atom, log|dy/dx| makes log φ(y) + log_abs_det the log of the atom's probability
    logp = stats.norm.logpdf(y[on]) + g.log_abs_det(x[on])
    np.testing.assert_allclose(logp, np.log(on.mean()), atol=1e-3)
    # the dequantization is seeded: same seed, same y; the fitted state round-trips through JSON
    assert np.array_equal(GaussRank.from_dict(g.to_dict()).forward(x), y)
    assert not np.array_equal(GaussRank(seed=1).fit(x).forward(x)[on], y[on])


def test_gauss_rank_of_a_discrete_column_generates_its_values_with_their_frequencies() -> None:
    x = DATA["discrete"]
    g = GaussRank().fit(x)
    z = g.inverse(np.random.default_rng(3).standard_normal(40000))
    values, counts = np.unique(z, return_counts=True)
    np.testing.assert_array_equal(values, np.arange(5.0))
    np.testing.assert_allclose(counts / len(z), [np.mean(x == v) for v in values], atol=0.01)


@pytest.mark.parametrize("kind", DATA)
def test_log_round_trip(kind: str) -> None:
    x = DATA[kind]
    chain = ColumnChain([Log(offset=1.0 - x.min()), Standardize()]).fit(x)
    np.testing.assert_allclose(chain.inverse(chain.forward(x)), x, rtol=1e-6, atol=1e-9 * np.abs(x).max())


@pytest.mark.parametrize(
    "transform",
    [Standardize(), MinMaxLogit(), GaussRank(), BoundedMinMax(), Log(), Scale(0.01), Atanh()],
    ids=lambda t: t.name,
)
def test_log_abs_det_matches_finite_differences(transform) -> None:
    x = DATA["skewed"] / 1000.0 if transform.name == "atanh" else DATA["skewed"]
    transform.fit(x)
    pts = np.quantile(x, [0.05, 0.3, 0.5, 0.8, 0.97])
    h = 1e-6 * np.maximum(1.0, np.abs(pts))
    numeric = np.log(np.abs((transform.forward(pts + h) - transform.forward(pts - h)) / (2 * h)))
    np.testing.assert_allclose(transform.log_abs_det(pts), numeric, atol=1e-4)


def test_log_abs_det_of_gauss_rank_tails_and_of_a_chain() -> None:
    x = DATA["heavy"][:15000]
    g = GaussRank().fit(x)
    pts = np.array([x.min() - 5.0, x.min() - 0.01, x.max() + 0.01, x.max() + 5.0])
    h = 1e-6 * np.abs(pts)
    numeric = np.log((g.forward(pts + h) - g.forward(pts - h)) / (2 * h))
    np.testing.assert_allclose(g.log_abs_det(pts), numeric, atol=1e-4)
    chain = ColumnChain([Scale(20.0), MinMaxLogit(), Standardize()]).fit(DATA["skewed"])
    pts = np.array([25.0, 60.0, 200.0])
    numeric = np.log((chain.forward(pts + 1e-5) - chain.forward(pts - 1e-5)) / 2e-5)
    np.testing.assert_allclose(chain.log_abs_det(pts), numeric, atol=1e-4)


def test_json_round_trip_is_bit_identical() -> None:
    x = np.stack([DATA["skewed"], DATA["heavy"], DATA["discrete"]], axis=1)
    p = Preprocessor(["pt", "eta", "n"], {"pt": "logit", "eta": "gauss-rank", "n": [Scale(2.0)]}).fit(x)
    q = Preprocessor.from_json(p.to_json())
    assert np.array_equal(p.forward(x), q.forward(x))
    assert np.array_equal(p.log_abs_det(x), q.log_abs_det(x))


def test_domain_masks() -> None:
    p = Preprocessor(["d"], [Scale(20.0), Atanh()])
    assert p.in_domain(np.array([[0.0], [19.9], [-20.0], [25.0]])).tolist() == [True, True, False, False]
    assert Log().in_domain(np.array([1.0, 0.0, -1.0])).tolist() == [True, False, False]


def test_errors_name_the_problem() -> None:
    with pytest.raises(InputError, match="'c' is constant"):
        Preprocessor(["c"], "standardize").fit(np.ones((10, 1)))
    with pytest.raises(InputError, match=r"'x': 2"):
        Preprocessor(["x"], "standardize").fit(np.array([[1.0], [np.nan], [np.inf], [2.0]]))
    with pytest.raises(InputError, match="log-transformed"):
        Preprocessor(["e"], [Log()]).fit(np.array([[1.0], [-1.0]]))
    with pytest.raises(InputError, match=r"unknown transform 'boxcox'.*gauss-rank"):
        make_transform({"name": "boxcox"})
    with pytest.raises(InputError, match="before fit"):
        Preprocessor(["x"], "standardize").forward(np.ones((2, 1)))
    with pytest.raises(InputError, match="before fit"):
        Preprocessor.from_json(Preprocessor(["x"], "gauss-rank").to_json()).inverse(np.ones((2, 1)))
    with pytest.raises(InputError, match=r"'gauss-rank'.* used before it was fitted"):
        GaussRank().forward(np.ones(2))
    with pytest.raises(InputError, match=r"shape \(n, 2\).*\(3, 3\)"):
        Preprocessor(["x", "y"]).fit(np.ones((3, 3)))
    with pytest.raises(InputError, match="unknown preprocessing preset"):
        Preprocessor(["x"], "quantile")
