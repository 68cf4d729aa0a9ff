from __future__ import annotations

import itertools
import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.response.resolution import core_width
from mcsurrogate.response.smearing import (
    POLYNOMIALS,
    PolynomialMapping,
    SmearingConfig,
    factor,
    resolution,
    smear_photons,
    smear_responses,
)

N = 200_000
RNG = np.random.default_rng(0)
PT = RNG.uniform(20, 200, (N, 2))
ETA = RNG.uniform(-2.5, 2.5, (N, 2))
MU = RNG.uniform(0, 40, N)


def truth_records(n: int = 1000, seed: int = 1) -> ak.Array:
    rng = np.random.default_rng(seed)
    ph = ak.zip(
        {
            "pt": rng.uniform(20, 150, (n, 2)),
            "eta": rng.uniform(-2.4, 2.4, (n, 2)),
            "phi": rng.uniform(-np.pi, np.pi, (n, 2)),
        }
    )
    return ak.zip({"photons": ph, "mu": rng.uniform(0, 40, n)}, depth_limit=1)


def test_all_polynomials_positive_with_factors_in_the_documented_range() -> None:
    grids = {"pt": np.linspace(0, 400, 401), "eta": np.linspace(-3, 3, 301), "mu": np.linspace(-5, 60, 301)}
    for response, variable in POLYNOMIALS:
        f = factor(response, variable, grids[variable])
        assert f.min() > 0.5 and f.max() < 2.7, (response, variable, f.min(), f.max())


@pytest.mark.parametrize("j,kind", [(0, "pt"), (1, "eta"), (2, "phi")])
def test_baseline_widths_match_sigma_in_bins(j: int, kind: str) -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("baseline"), seed=1)
    sigma = resolution(kind, PT, ETA, MU[:, None])
    pulls = d[:, :, j] / sigma
    assert pulls.mean() == pytest.approx(0.0, abs=0.01)
    # in bins of E_T, |η| and μ: the sample width over the expected one (rms of σ in the bin) is 1 within 4 stat. SDs
    mu2 = np.broadcast_to(MU[:, None], PT.shape)
    for values, edges in ((PT, (20, 50, 100, 200)), (abs(ETA), (0, 0.8, 1.6, 2.5)), (mu2, (0, 13, 26, 40))):
        for lo, hi in itertools.pairwise(edges):
            sel = (values >= lo) & (values < hi)
            ratio = d[:, :, j][sel].std() / np.sqrt((sigma[sel] ** 2).mean())
            assert ratio == pytest.approx(1.0, abs=4 / np.sqrt(2 * sel.sum())), (kind, lo, hi)
    # and the raw width follows sigma: wide vs narrow halves
    wide = sigma > np.median(sigma)
    assert d[:, :, j][wide].std() / d[:, :, j][~wide].std() == pytest.approx(
        np.sqrt((sigma[wide] ** 2).mean() / (sigma[~wide] ** 2).mean()), rel=0.02
    )


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_correlation_scenario(rho: float) -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("correlation", rho=rho), seed=2)
    sigma = np.stack([resolution(k, PT, ETA, MU[:, None]) for k in ("pt", "eta", "phi")], axis=-1)
    z = (d / sigma).reshape(N, 6)
    c = np.corrcoef(z, rowvar=False)
    for j in range(3):
        assert c[j, 3 + j] == pytest.approx(rho, abs=0.01)
    off = [c[a, b] for a in range(6) for b in range(a + 1, 6) if b != a + 3]
    assert max(abs(x) for x in off) < 0.01


def test_asymmetric_scenario_mean_and_tail_fraction() -> None:
    d = smear_responses(PT, ETA, MU, SmearingConfig("asymmetric"), seed=3)
    z = d[:, :, 0] / resolution("pt", PT, ETA, MU[:, None])
    assert z.mean() == pytest.approx(0.16 * -3.0, abs=0.01)
    from scipy.stats import norm

    expected = 0.84 * norm.cdf(-2) + 0.16 * norm.cdf((-2 + 3) / 3)
    assert np.mean(z < -2) == pytest.approx(expected, abs=0.003)
    _mean, width = core_width(z.ravel())
    assert width == pytest.approx(1.0, abs=0.08)


def test_smear_photons_records_seed_and_phi_wrapping() -> None:
    truth = truth_records()
    a = smear_photons(truth, SmearingConfig(), seed=4)
    b = smear_photons(truth, SmearingConfig(), seed=4)
    assert a.fields == ["photons", "truth_photons", "mu"]
    assert ak.all(a.photons.pt == b.photons.pt)
    assert not ak.any(smear_photons(truth, SmearingConfig(), seed=5).photons.pt == a.photons.pt)
    assert ak.all(abs(a.photons.phi) <= np.pi)
    assert ak.all(a.truth_photons.pt == truth.photons.pt)
    m = (a.photons[:, 0] + a.photons[:, 1]).mass
    assert ak.all(m > 0)
    near = ak.zip(
        {
            "photons": ak.zip(
                {"pt": np.full((5, 2), 50.0), "eta": np.zeros((5, 2)), "phi": np.full((5, 2), np.pi - 1e-7)}
            ),
            "mu": np.zeros(5),
        },
        depth_limit=1,
    )
    assert ak.all(abs(smear_photons(near, seed=0).photons.phi) <= np.pi)


def test_bad_truth_input() -> None:
    one = ak.zip({"photons": ak.Array([[{"pt": 30.0, "eta": 0.1, "phi": 0.2}]]), "mu": np.array([3.0])}, depth_limit=1)
    with pytest.raises(InputError, match="1 truth events have fewer than two photons"):
        smear_photons(one)
    t = truth_records(10)
    bad = ak.with_field(t, np.r_[np.nan, np.ones(9)], "mu")
    with pytest.raises(InputError, match=r"NaN.*mu"):
        smear_photons(bad)
    with pytest.raises(InputError, match="scenario"):
        SmearingConfig("gaussian")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="rho"):
        SmearingConfig("correlation", rho=1.5)
    with pytest.raises(InputError, match="shape"):
        smear_responses(PT[:10, 0], ETA[:10], MU[:10], SmearingConfig())
    config = SmearingConfig("asymmetric", core_fraction=0.9, mapping=PolynomialMapping(pt_range=(25.0, 250.0)))
    assert SmearingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PolynomialMapping.from_dict(PolynomialMapping().to_dict()) == PolynomialMapping()


def test_smear_cli(tmp_path) -> None:
    from mcsurrogate.io import read_events, write_events

    write_events(truth_records(200), tmp_path / "t.parquet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcsurrogate",
            "smear",
            str(tmp_path / "t.parquet"),
            "--scenario",
            "correlation",
            "--rho",
            "1.0",
            "-o",
            str(tmp_path / "r.root"),
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    reco = read_events(tmp_path / "r.root")
    assert len(reco) == 200 and {"photons", "truth_photons", "mu"} <= set(reco.fields)
