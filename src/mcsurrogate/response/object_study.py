"""The object-level response study (issue 31): train an :class:`~.objects.ObjectResponse` on a reference detector's
truth + reco collections and compare it with that detector on held-out truth events and on another process.

Both samples of a comparison pass the *same* truth events through a detector (reference: ``reference_passes`` seeds;
surrogate: as many), and both are analysed as an analyst would, through :func:`~.matching.match_objects`:

* efficiency (matched / truth objects) in bins of truth E_T, η and μ, with binomial uncertainties, and the χ²/bin of
  surrogate − reference;
* the reco multiplicity per event (χ²/bin of the two histograms);
* the core width (:func:`~.resolution.core_width`) of each response of the matched pairs in bins of E_T, η, μ, and
  the χ²/bin of the width ratios (bootstrap uncertainties that resample whole events: the objects of one event share
  its detector conditions, e.g. a common response component ρ);
* the correlation of the responses of every two matched objects of one event, as pulls Δ/σ with σ the reference's
  own resolution (for the correlation scenarios: the designed ρ);
* m_γγ of the two leading reco photons.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np

from ..arguments import check_bool, check_float, check_int
from ..errors import InputError
from .efficiency import EfficiencyModel, reliability
from .evaluation import width_ratio_consistency
from .matching import match_objects
from .objects import EFFICIENCY_FEATURES, LOG_CONDITIONS, ObjectLayout, ObjectResponse, training_pairs
from .reference_detector import PhotonDetector, reconstruct_photons
from .resolution import BinnedWidths, binned_core_widths
from .smearing import FIELDS, resolution

__all__ = [
    "BARS",
    "DEFAULT_OBJECT_BINS",
    "EFFICIENCY_FEATURE_SETS",
    "BinnedEfficiency",
    "ObjectEvaluation",
    "ObjectStudyResult",
    "add_companions",
    "compare_efficiency_classifiers",
    "efficiency_generalisation",
    "evaluate_objects",
    "headline",
    "load_or_generate_truth",
    "load_study_truth",
    "run_object_study",
    "score_decision_draws",
    "split_study_events",
    "statistical_floor",
    "width_chi2_of_draws",
    "write_study_report",
]

#: bins of the truth variables: E_T in GeV, η, μ
DEFAULT_OBJECT_BINS = {
    "pt": np.array([10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 300.0]),
    "eta": np.linspace(-2.5, 2.5, 11),
    "mu": np.linspace(0, 40, 9),
}


@dataclass
class BinnedEfficiency:
    """Efficiency (matched / truth objects) of a reference and a generated sample in bins of ``variable``."""

    variable: str
    edges: list[float]
    n_reference: list[int]
    reference: list[float]
    reference_err: list[float]
    n_generated: list[int]
    generated: list[float]
    generated_err: list[float]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return tuple(
            np.asarray(v, dtype=np.float64)
            for v in (self.reference, self.reference_err, self.generated, self.generated_err)
        )  # type: ignore[return-value]

    def pulls(self) -> np.ndarray:
        """(generated − reference) / combined binomial uncertainty, per bin with entries on both sides."""
        r, re, g, ge = self._arrays()
        err = np.hypot(re, ge)
        ok = np.isfinite(r) & np.isfinite(g) & (err > 0)
        return (g[ok] - r[ok]) / err[ok]

    def to_dict(self) -> dict[str, Any]:
        r, re, g, ge = self._arrays()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = g / r
            ratio_err = np.abs(ratio) * np.hypot(re / r, ge / g)
        return dataclasses.asdict(self) | {
            "ratio": _finite(ratio),
            "ratio_err": _finite(ratio_err),
            "chi2_per_bin": float(np.mean(self.pulls() ** 2)) if len(self.pulls()) else None,
        }


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _binned_efficiency(
    variable: str, edges: np.ndarray, x_ref: np.ndarray, found_ref: np.ndarray, x_gen: np.ndarray, found_gen: np.ndarray
) -> BinnedEfficiency:
    def per_bin(x: np.ndarray, found: np.ndarray) -> tuple[list[int], list[float], list[float]]:
        idx = np.digitize(x, edges) - 1
        ok = (idx >= 0) & (idx < len(edges) - 1)
        n = np.bincount(idx[ok], minlength=len(edges) - 1)
        k = np.bincount(idx[ok], weights=found[ok].astype(np.float64), minlength=len(edges) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = k / n
            err = np.sqrt(p * (1 - p) / n)
        # a bin with p = 0 or 1 has no binomial spread: use the rule-of-three-like 1/(n + 1) instead of 0
        err = np.where((n > 0) & (err == 0), 1.0 / (n + 1), err)
        return n.tolist(), _finite(p), _finite(err)  # type: ignore[return-value]

    nr, pr, er = per_bin(x_ref, found_ref)
    ng, pg, eg = per_bin(x_gen, found_gen)
    return BinnedEfficiency(variable, [float(e) for e in edges], nr, pr, er, ng, pg, eg)  # type: ignore[arg-type]


def efficiency_chi2_of_draws(
    x: np.ndarray,
    found: np.ndarray,
    p: np.ndarray,
    draws: int,
    seed: int,
    *,
    bins: Mapping[str, np.ndarray] = DEFAULT_OBJECT_BINS,
) -> list[float]:
    """χ²/bin of the efficiency vs E_T, η, μ (GeV, –, pile-up; ``x`` columns 0–2, in ``bins``: the study's)
    between the reference's outcomes ``found`` and each of ``draws`` independent Bernoulli draws from ``p`` (the
    surrogate's p(reco) of the same truth objects, or the reference's own ε for the floor), binomial errors on both.

    One draw of the surrogate's decisions scatters its χ²/bin by about ±0.26 (the study's samples); the mean over
    draws estimates the χ²/bin a draw gives on average against this reference."""
    out = []
    for drawn in _bernoulli_draws(p, draws, seed):
        pulls = np.concatenate(
            [
                _binned_efficiency(v, bins[v], x[:, j], found, x[:, j], drawn).pulls()
                for j, v in enumerate(("pt", "eta", "mu"))
            ]
        )
        out.append(float(np.mean(pulls**2)))
    return out


def _efficiency_chi2(efficiency: Mapping[str, BinnedEfficiency]) -> float:
    """χ²/bin of the surrogate − reference efficiencies over every bin of every variable."""
    pulls = np.concatenate([e.pulls() for e in efficiency.values()])
    return float(np.mean(pulls**2))


def _bernoulli_draws(p: np.ndarray, draws: int, seed: int) -> list[np.ndarray]:
    """``draws`` independent reconstruction decisions (booleans) of objects with probabilities ``p``, seeded."""
    rng = np.random.default_rng(seed)
    return [rng.random(len(p)) < p for _ in range(check_int(draws, "draws", minimum=1))]


def _multiplicity_chi2(
    reference: np.ndarray, generated: np.ndarray, scale: float, min_count: int = 10
) -> dict[str, float]:
    """χ²/bin of two histograms of objects per event, ``generated`` from ``scale`` times the reference's events
    (rescaled to the reference's sum); bins with fewer than ``min_count`` entries in both merged into the last."""
    n = max(len(reference), len(generated))
    r = np.pad(np.asarray(reference, dtype=np.float64), (0, n - len(reference)))
    g = np.pad(np.asarray(generated, dtype=np.float64), (0, n - len(generated)))
    g = g * r.sum() / max(g.sum(), 1)
    k = len(r)
    while k > 1 and r[k - 1] + g[k - 1] < min_count:
        k -= 1
    r = np.append(r[: k - 1], r[k - 1 :].sum())
    g = np.append(g[: k - 1], g[k - 1 :].sum())
    var = r + g / scale  # the generated histogram has `scale` times the events, rescaled
    ok = var > 0
    return {"chi2_per_bin": float(np.mean((g[ok] - r[ok]) ** 2 / var[ok])), "n_bins": int(ok.sum())}


def multiplicity_chi2_of_draws(
    event: np.ndarray, n_events: int, reference: Sequence[int], p: np.ndarray, draws: int, seed: int
) -> list[float]:
    """χ²/bin of the reco multiplicity between the reference's histogram ``reference`` (events with 0, 1, …
    objects) and each of ``draws`` independent Bernoulli draws from ``p`` of the truth objects of events ``event``
    (indices < ``n_events``): the multiplicity a surrogate that keeps every object it reconstructs (no reco
    threshold, no fakes, as the study's) gives on average. One draw scatters the χ²/bin by about ±0.5 (7 bins)."""
    observed = np.asarray(reference)
    return [
        _multiplicity_chi2(observed, np.bincount(np.bincount(event[drawn], minlength=n_events)), 1.0)["chi2_per_bin"]
        for drawn in _bernoulli_draws(p, draws, seed)
    ]


def score_decision_draws(
    evaluation: Any,
    floor: Any,
    reference: ak.Array,
    layout: ObjectLayout,
    model: ObjectResponse,
    epsilon: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    draws: int,
    seed: int,
    *,
    bins: Mapping[str, np.ndarray] = DEFAULT_OBJECT_BINS,
) -> dict[str, float]:
    """Fill ``efficiency_draws`` and ``multiplicity_draws`` of ``evaluation`` (``draws`` draws of the surrogate's
    reconstruction decisions from ``model``'s p, seeds ``seed + 60`` and ``+ 80``) and, when ``floor`` is an
    evaluation, of ``floor`` (draws from the reference detector's ``epsilon(pt, eta, mu, dr_nearest)``, seeds
    ``+ 70`` and ``+ 90``), all against the reference's outcomes on ``reference``'s truth. Returns the reliability of
    the surrogate's p against those outcomes."""
    t, found, _, _ = training_pairs(reference, layout)
    p = model.reconstruction_probability(t)
    x = t.efficiency_features()  # pt, eta, mu, n_objects, dr_nearest
    observed = evaluation.multiplicity_reference
    targets = [(evaluation, p, seed + 60)]
    if floor is not None:
        targets.append((floor, epsilon(x[:, 0], x[:, 1], x[:, 2], x[:, 4]), seed + 70))
    for target, prob, s in targets:
        target.efficiency_draws = efficiency_chi2_of_draws(x, found, prob, draws, s, bins=bins)
        target.multiplicity_draws = multiplicity_chi2_of_draws(t.event, len(reference), observed, prob, draws, s + 20)
    return reliability(p, found)


@dataclass
class _Sample:
    """Flat views of one detector output, analysed through matching (objects in truth-E_T order)."""

    pt: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    found: np.ndarray
    delta: np.ndarray  # (n_matched, 3): E_T, η, φ responses of the matched objects
    matched_pt: np.ndarray
    matched_eta: np.ndarray
    matched_mu: np.ndarray
    matched_event: np.ndarray
    multiplicity: np.ndarray
    mass: np.ndarray

    @classmethod
    def of(cls, events: ak.Array, reco: str, truth: str, pileup: str, max_dr: float) -> _Sample:
        tr = events[truth][ak.argsort(events[truth].pt, axis=1, ascending=False, stable=True)]
        rc = events[reco]
        m = match_objects(tr, rc, max_dr=max_dr)
        counts = ak.to_numpy(ak.num(tr))
        mu_ev = ak.to_numpy(events[pileup]).astype(np.float64)
        t, r = m.pairs(tr, rc)
        n_pairs = ak.to_numpy(ak.num(t))
        d = np.column_stack([ak.to_numpy(ak.flatten(r[f] - t[f])).astype(np.float64) for f in ("pt", "eta", "phi")])
        d[:, 2] = (d[:, 2] + np.pi) % (2 * np.pi) - np.pi
        two = rc[ak.num(rc) >= 2]
        mass = ak.to_numpy((two[:, 0] + two[:, 1]).mass).astype(np.float64) if len(two) else np.zeros(0)

        def flat(a: ak.Array) -> np.ndarray:
            return np.asarray(ak.to_numpy(ak.flatten(a)), dtype=np.float64)

        return cls(
            pt=flat(tr.pt),
            eta=flat(tr.eta),
            mu=np.repeat(mu_ev, counts),
            found=np.asarray(ak.to_numpy(ak.flatten(m.truth_matched)), dtype=bool),
            delta=d,
            matched_pt=flat(t.pt),
            matched_eta=flat(t.eta),
            matched_mu=np.repeat(mu_ev, n_pairs),
            matched_event=np.repeat(np.arange(len(events)), n_pairs),
            multiplicity=np.asarray(ak.to_numpy(ak.num(rc)), dtype=np.int64),
            mass=mass,
        )

    def pair_pulls(
        self, j: int, sigma: Callable[[str, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pulls of response ``j`` of every pair (a < b) of matched objects of one event."""
        name = ("pt", "eta", "phi")[j]
        z = self.delta[:, j] / sigma(name, self.matched_pt, self.matched_eta, self.matched_mu)
        counts = np.bincount(self.matched_event, minlength=int(self.matched_event.max()) + 1 if len(z) else 0)
        pairs = ak.argcombinations(ak.unflatten(z, counts), 2)
        start = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), ak.to_numpy(ak.num(pairs)))
        a = ak.to_numpy(ak.flatten(pairs["0"])) + start
        b = ak.to_numpy(ak.flatten(pairs["1"])) + start
        return z[a.astype(np.int64)], z[b.astype(np.int64)]

    def binned_efficiencies(self, generated: _Sample, bins: Mapping[str, np.ndarray]) -> dict[str, BinnedEfficiency]:
        """This sample's (the reference's) and ``generated``'s efficiency in ``bins`` of truth E_T (GeV), η, μ."""
        return {
            var: _binned_efficiency(
                var, bins[var], getattr(self, var), self.found, getattr(generated, var), generated.found
            )
            for var in ("pt", "eta", "mu")
        }

    def response_widths(
        self, generated: _Sample, bins: Mapping[str, np.ndarray], n_boot: int, seed: int
    ) -> dict[str, dict[str, BinnedWidths]]:
        """:meth:`binned_widths` of every response (E_T, η, φ; bootstrap seeds ``seed``, ``seed + 1``, ``seed + 2``)."""
        return {name: self.binned_widths(generated, j, bins, n_boot, seed + j) for j, name in enumerate(FIELDS)}

    def binned_widths(
        self, generated: _Sample, j: int, bins: Mapping[str, np.ndarray], n_boot: int, seed: int
    ) -> dict[str, BinnedWidths]:
        """Core widths of response ``j`` (0 E_T, 1 η, 2 φ) of this sample's (the reference's) and ``generated``'s
        matched objects in ``bins`` of truth E_T (GeV), η, μ; bootstrap errors resample whole events."""
        return {
            var: binned_core_widths(
                getattr(self, f"matched_{var}"),
                self.delta[:, j],
                generated.delta[:, j],
                bins[var],
                name=var,
                n_boot=n_boot,
                seed=seed,
                generated_variable=getattr(generated, f"matched_{var}"),
                groups=self.matched_event,
                generated_groups=generated.matched_event,
            )
            for var in ("pt", "eta", "mu")
        }


def _reference_sigma(name: str, pt: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return resolution(name, pt, eta, mu)  # type: ignore[arg-type]


def _mass_summary(mass: np.ndarray, n_events: int, window: tuple[float, float]) -> dict[str, float]:
    sel = mass[(mass > window[0]) & (mass < window[1])]
    return {
        "fraction_of_events_in_window": float(len(sel) / max(n_events, 1)),
        "mean": float(sel.mean()) if len(sel) else float("nan"),
        "mean_err": float(sel.std() / np.sqrt(len(sel))) if len(sel) > 1 else float("nan"),
        "sd": float(sel.std()) if len(sel) > 1 else float("nan"),
        "n": len(sel),
    }


@dataclass
class ObjectEvaluation:
    """Reference vs surrogate on the same truth events (module docstring); the ``*_summary`` numbers are the ones
    the issue's bars are about."""

    efficiency: dict[str, BinnedEfficiency]
    multiplicity_reference: list[int]
    multiplicity_generated: list[int]
    widths: dict[str, dict[str, BinnedWidths]]
    correlation: dict[str, dict[str, float]]
    diphoton: dict[str, dict[str, float]]
    n_events: dict[str, int]
    reliability: dict[str, float] | None = None
    masses: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: efficiency χ²/bin of further independent draws of the surrogate's reconstruction decisions (its p fixed)
    #: against the same reference (:func:`efficiency_chi2_of_draws`); empty when not computed
    efficiency_draws: list[float] = field(default_factory=list)
    #: multiplicity χ²/bin of the same kind of draws (:func:`multiplicity_chi2_of_draws`); empty when not computed
    multiplicity_draws: list[float] = field(default_factory=list)
    #: width χ²/bin of independent samples of the surrogate (or, for a floor, of the reference detector) against the
    #: same reference, this evaluation's own first (:func:`width_chi2_of_draws`); empty when not computed
    width_draws: list[float] = field(default_factory=list)

    def efficiency_chi2(self) -> float:
        return _efficiency_chi2(self.efficiency)

    def multiplicity_chi2(self, min_count: int = 10) -> dict[str, float]:
        """χ²/bin of the two multiplicity histograms (equal event counts; bins with fewer than ``min_count`` objects
        in both merged into the last)."""
        g_scale = self.n_events["generated"] / max(self.n_events["reference"], 1)
        return _multiplicity_chi2(
            np.asarray(self.multiplicity_reference), np.asarray(self.multiplicity_generated), g_scale, min_count
        )

    def width_consistency(self, precise: float = 0.01) -> dict[str, float]:
        """:func:`~.evaluation.width_ratio_consistency` of the per-object core widths, with the ratio range over
        every bin too."""
        r = np.concatenate([w.ratio for per in self.widths.values() for w in per.values()])
        e = np.concatenate([w.ratio_err for per in self.widths.values() for w in per.values()])
        ok = np.isfinite(r) & np.isfinite(e) & (e > 0)
        return width_ratio_consistency(self.widths, precise) | {
            "ratio_min": float(r[ok].min()) if ok.any() else float("nan"),
            "ratio_max": float(r[ok].max()) if ok.any() else float("nan"),
        }

    def summary(self) -> dict[str, Any]:
        ref, gen = self.diphoton["reference"], self.diphoton["generated"]
        return {
            "efficiency_chi2_per_bin": self.efficiency_chi2(),
            "efficiency_chi2_per_bin_mean_of_draws": (
                float(np.mean(self.efficiency_draws)) if self.efficiency_draws else float("nan")
            ),
            "efficiency_draws": len(self.efficiency_draws),
            "multiplicity_chi2_per_bin_mean_of_draws": (
                float(np.mean(self.multiplicity_draws)) if self.multiplicity_draws else float("nan")
            ),
            "multiplicity": self.multiplicity_chi2(),
            "widths": self.width_consistency(),
            "width_chi2_per_bin_mean_of_draws": (
                float(np.mean(self.width_draws)) if self.width_draws else float("nan")
            ),
            "width_draws": len(self.width_draws),
            "correlation_max_abs_difference": max(
                abs(c["generated"] - c["reference"]) for c in self.correlation.values()
            ),
            "mass_mean_difference_gev": gen["mean"] - ref["mean"],
            "mass_mean_difference_err_gev": float(np.hypot(gen["mean_err"], ref["mean_err"])),
            "mass_sd_ratio": gen["sd"] / ref["sd"],
            "mass_window_fraction": [ref["fraction_of_events_in_window"], gen["fraction_of_events_in_window"]],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": _clean(self.summary()),
            "n_events": self.n_events,
            "efficiency": {k: v.to_dict() for k, v in self.efficiency.items()},
            "multiplicity_reference": self.multiplicity_reference,
            "multiplicity_generated": self.multiplicity_generated,
            "widths": {f: {v: _clean(w.to_dict()) for v, w in per.items()} for f, per in self.widths.items()},
            "correlation": self.correlation,
            "diphoton": self.diphoton,
            "efficiency_reliability": self.reliability,
            "efficiency_chi2_per_bin_draws": self.efficiency_draws,
            "multiplicity_chi2_per_bin_draws": self.multiplicity_draws,
            "width_chi2_per_bin_draws": self.width_draws,
        }


def _clean(d: Any) -> Any:
    """NaN → None, recursively (strict JSON)."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_clean(v) for v in d]
    if isinstance(d, float) and not np.isfinite(d):
        return None
    return d


def evaluate_objects(
    reference: ak.Array,
    generated: ak.Array,
    *,
    reco: str = "photons",
    truth: str = "truth_photons",
    pileup: str = "mu",
    max_dr: float = 0.1,
    bins: Mapping[str, np.ndarray] | None = None,
    rho: float | None = None,
    sigma: Callable[[str, np.ndarray, np.ndarray, np.ndarray], np.ndarray] = _reference_sigma,
    n_boot: int = 20,
    seed: int = 0,
    window: tuple[float, float] = (120.0, 130.0),
) -> ObjectEvaluation:
    """Compare a reference detector's output with a surrogate's on the same truth events (module docstring).

    ``sigma(field, pt, eta, mu)`` scales the responses into pulls for the correlations (default: paper A's
    resolution, the reference photon detector's own); ``rho`` the designed correlation, reported beside them."""
    b = DEFAULT_OBJECT_BINS | dict(bins or {})
    ref = _Sample.of(reference, reco, truth, pileup, max_dr)
    gen = _Sample.of(generated, reco, truth, pileup, max_dr)
    efficiency = ref.binned_efficiencies(gen, b)
    n_max = int(max(ref.multiplicity.max(initial=0), gen.multiplicity.max(initial=0))) + 1
    widths = ref.response_widths(gen, b, n_boot, seed)
    correlation = {}
    for j, name in enumerate(("pt", "eta", "phi")):
        ra, rb = ref.pair_pulls(j, sigma)
        ga, gb = gen.pair_pulls(j, sigma)
        r_ref = float(np.corrcoef(ra, rb)[0, 1]) if len(ra) > 2 else float("nan")
        r_gen = float(np.corrcoef(ga, gb)[0, 1]) if len(ga) > 2 else float("nan")
        correlation[name] = {
            "designed": float("nan") if rho is None else float(rho),
            "reference": r_ref,
            "reference_err": float((1 - r_ref**2) / np.sqrt(max(len(ra), 1))),
            "generated": r_gen,
            "generated_err": float((1 - r_gen**2) / np.sqrt(max(len(ga), 1))),
            "n_pairs_reference": len(ra),
            "n_pairs_generated": len(ga),
        }
    return ObjectEvaluation(
        efficiency=efficiency,
        multiplicity_reference=np.bincount(ref.multiplicity, minlength=n_max).tolist(),
        multiplicity_generated=np.bincount(gen.multiplicity, minlength=n_max).tolist(),
        widths=widths,
        correlation=correlation,
        diphoton={
            "reference": _mass_summary(ref.mass, len(reference), window),
            "generated": _mass_summary(gen.mass, len(generated), window),
        },
        n_events={"reference": len(reference), "generated": len(generated)},
        masses={"reference": ref.mass, "generated": gen.mass},
    )


def width_chi2_of_draws(
    reference: ak.Array,
    draws: Iterable[ak.Array],
    *,
    reco: str = "photons",
    truth: str = "truth_photons",
    pileup: str = "mu",
    max_dr: float = 0.1,
    bins: Mapping[str, np.ndarray] | None = None,
    n_boot: int = 20,
    seed: int = 0,
) -> list[float]:
    """The width χ²/bin (:meth:`ObjectEvaluation.width_consistency`, as :func:`evaluate_objects` computes it with the
    same ``seed``) of each sample of ``draws`` (surrogate or detector outputs of ``reference``'s truth events, taken one
    at a time) against ``reference``.

    One sample's χ²/bin scatters by far more than the efficiency's where the responses of an event are correlated: a
    shared component moves the widths of every bin an event's objects fall in together (the object study on t t̄ H,
    the reference against itself: 0.92–1.54 over 8 draws for ρ = 1, docs/object_response.md). The mean over draws
    estimates what a sample gives on average against this reference."""
    b = DEFAULT_OBJECT_BINS | dict(bins or {})
    ref = _Sample.of(reference, reco, truth, pileup, max_dr)
    out = []
    for generated in draws:
        gen = _Sample.of(generated, reco, truth, pileup, max_dr)
        out.append(width_ratio_consistency(ref.response_widths(gen, b, n_boot, seed), 0.01)["chi2_per_bin"])
    return out


def compare_efficiency_classifiers(
    model: ObjectResponse, train: ak.Array, test: ak.Array, *, seed: int = 0
) -> dict[str, Any]:
    """The object efficiency of ``model`` (MLP + Platt) against scikit-learn's HistGradientBoostingClassifier trained
    on the same matched/unmatched truth objects (``train``) with isotonic calibration (``CalibratedClassifierCV``),
    both scored on ``test``: log-loss, Brier score, reliability, fit seconds."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    t_tr, found_tr, _, _ = training_pairs(train, model.layout)
    t_te, found_te, _, _ = training_pairs(test, model.layout)
    names = model.efficiency.features
    x_tr, x_te = t_tr.efficiency_features(names), t_te.efficiency_features(names)
    t0 = time.perf_counter()
    hgb = CalibratedClassifierCV(
        HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, early_stopping=True, random_state=seed),
        method="isotonic",
        cv=3,
    ).fit(x_tr, found_tr)
    t_hgb = time.perf_counter() - t0
    p_hgb = hgb.predict_proba(x_te)[:, 1]
    p_mlp = model.efficiency.probability(x_te)
    return {
        "n_train_objects": len(x_tr),
        "n_test_objects": len(x_te),
        "mlp_platt": reliability(p_mlp, found_te),
        "hist_gradient_boosting_isotonic": reliability(p_hgb, found_te) | {"fit_seconds": t_hgb},
    }


@dataclass
class ObjectStudyResult:
    """One scenario: the model, the held-out evaluation, the evaluations on other processes, timings (s)."""

    scenario: dict[str, Any]
    model: ObjectResponse
    evaluation: ObjectEvaluation
    generalisation: dict[str, ObjectEvaluation]
    seconds: dict[str, float]
    sizes: dict[str, Any]  # counts and passes; scale_bins a list
    classifiers: dict[str, Any] | None = None
    #: the statistical floor of each comparison (``"test"`` and each other process): the reference detector against
    #: an independent set of its own passes over the same truth events, evaluated as the surrogate is
    floor: dict[str, ObjectEvaluation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        training = dict(self.model.response.metrics.get("training", {}))
        training.pop("history", None)
        return _clean(
            {
                "scenario": self.scenario,
                "sizes": self.sizes,
                "seconds": self.seconds,
                "model_metrics": self.model.metrics,
                "flow": self.model.response.flow_config.to_dict(),
                "flow_training": training,
                "n_parameters": self.model.response.metrics.get("n_parameters"),
                # the distilled sampler's fit (held-out error per target, its history, skipped steps); None unless
                # the study distilled the flow
                "distillation": self.model.response.metrics.get("distillation"),
                "efficiency_classifiers": self.classifiers,
                "test": self.evaluation.to_dict(),
                "generalisation": {k: v.to_dict() for k, v in self.generalisation.items()},
                "floor": {k: headline(v) for k, v in self.floor.items()},
            }
        )


def _passes(
    truth: ak.Array,
    detector: PhotonDetector,
    collection: str,
    passes: int,
    seed: int,
    companions: float = 0.0,
    rounds: int = 1,
    companion_pt_min: float = 10.0,
) -> ak.Array:
    """``passes`` reference-detector passes of the same truth events (seeds ``seed``, ``seed + 1``, …), concatenated;
    with ``companions`` > 0 each pass first adds close companions (:func:`add_companions`, ``rounds``, above
    ``companion_pt_min`` GeV, seeded by the pass)."""

    def source(k: int) -> ak.Array:
        if companions == 0:
            return truth
        return add_companions(
            truth, companions, collection=collection, seed=seed + k, rounds=rounds, pt_min=companion_pt_min
        )

    return ak.concatenate(
        [reconstruct_photons(source(k), detector, seed=seed + k, collection=collection) for k in range(passes)]
    )


def add_companions(
    truth: ak.Array,
    fraction: float,
    *,
    collection: str = "all_photons",
    seed: int = 0,
    rounds: int = 1,
    dr_range: tuple[float, float] = (0.03, 1.0),
    pt_fraction: tuple[float, float] = (0.1, 1.0),
    pt_min: float = 10.0,
    eta_max: float = 2.5,
) -> ak.Array:
    """Training-sample design: ``truth`` with a companion object added beside a random ``fraction`` of the objects of
    ``collection``, at ΔR log-uniform in ``dr_range`` (a uniform direction in η–φ) with E_T = U(``pt_fraction``) ×
    the object's; companions below ``pt_min`` (GeV) or beyond ``|η|`` = ``eta_max`` are not added. The other fields
    of a companion are its object's (booleans: False). A process with few close or crowded objects (gg → H photons)
    then covers the contexts — ΔR to the nearest object, object count, earlier objects — that other processes hold;
    the detector (reference or full simulation) reconstructs the augmented truth as any other. With ``rounds`` > 1
    the step repeats on the augmented objects (companions get companions too): crowded events with many objects, as
    t t̄ H's, become common (3 rounds of 0.3: 15 % of the reconstructed photons follow three or more others, t t̄ H
    12 %, one round 2.5 %)."""
    check_float(fraction, "fraction", minimum=0.0, maximum=1.0)
    check_int(rounds, "rounds", minimum=1)
    if collection not in truth.fields:
        raise InputError(f"the truth events have no collection {collection!r} (fields: {truth.fields})")
    rng = np.random.default_rng([check_int(seed, "seed", minimum=0), 41])
    for _ in range(rounds):
        objects = truth[collection]
        counts = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
        cols = {f: np.asarray(ak.to_numpy(ak.flatten(objects[f]))) for f in objects.fields}
        event = np.repeat(np.arange(len(counts)), counts)
        parent = np.flatnonzero(rng.random(len(event)) < fraction)
        dr = np.exp(rng.uniform(np.log(dr_range[0]), np.log(dr_range[1]), len(parent)))
        angle = rng.uniform(0.0, 2 * np.pi, len(parent))
        new = {f: v[parent].copy() if v.dtype != bool else np.zeros(len(parent), bool) for f, v in cols.items()}
        new["pt"] = cols["pt"][parent] * rng.uniform(*pt_fraction, len(parent))
        new["eta"] = cols["eta"][parent] + dr * np.cos(angle)
        new["phi"] = (cols["phi"][parent] + dr * np.sin(angle) + np.pi) % (2 * np.pi) - np.pi
        keep = (new["pt"] > pt_min) & (np.abs(new["eta"]) < eta_max)
        all_events = np.concatenate([event, event[parent][keep]])
        order = np.argsort(all_events, kind="stable")
        merged = {f: np.concatenate([cols[f], new[f][keep]])[order] for f in cols}
        name = objects.layout.content.parameter("__record__") if objects.layout.content.is_record else None
        augmented = ak.unflatten(ak.zip(merged, with_name=name), np.bincount(all_events, minlength=len(counts)))
        truth = ak.with_field(truth, augmented, collection)
    return truth


def split_study_events(truth: ak.Array, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[ak.Array, ak.Array]:
    """``(train, test)``: the events of ``truth`` split at random (seeded), ``test_fraction`` of them held out — the
    split of :func:`run_object_study` and :func:`efficiency_generalisation` for the same ``seed``."""
    check_float(test_fraction, "test_fraction", above=0.0, below=1.0)
    is_test = np.random.default_rng([seed, 7]).random(len(truth)) < test_fraction
    return truth[~is_test], truth[is_test]


def _truth_only(events: ak.Array, layout: ObjectLayout) -> ak.Array:
    return ak.zip({layout.truth: events[layout.truth], layout.pileup: events[layout.pileup]}, depth_limit=1)


def run_object_study(
    truth: ak.Array,
    detector: PhotonDetector,
    *,
    collection: str = "all_photons",
    other_processes: Mapping[str, ak.Array] | None = None,
    test_fraction: float = 0.2,
    train_passes: int = 1,
    efficiency_passes: int | None = None,
    calibration_passes: int | None = None,
    scale_passes: int | None = None,
    scale_bins: tuple[int, int, int] = (20, 12, 8),
    oversample: int = 2,
    preset: str = "affine-spline",
    training: Mapping[str, Any] | None = None,
    efficiency: Mapping[str, Any] | EfficiencyModel | None = None,
    efficiency_features: Sequence[str] | None = None,
    log_conditions: Sequence[str] | None = None,
    calibrate_widths: bool = True,
    distill: Mapping[str, Any] | None = None,
    companions: float = 0.0,
    companion_rounds: int = 1,
    companion_pt_min: float = 10.0,
    symmetric_eta: bool = False,
    compare_classifiers: bool = False,
    floor: bool = True,
    efficiency_draws: int = 8,
    width_draws: int = 1,
    seed: int = 0,
    progress: bool | None = None,
) -> ObjectStudyResult:
    """Split ``truth`` events (``collection`` objects, μ) into training and test, pass the training truth through
    ``detector`` ``train_passes`` times, fit an :class:`ObjectResponse`, and evaluate it on the test truth and on
    each of ``other_processes`` (truth events it never saw), ``oversample`` detector passes on each side. The
    efficiency classifier trains on ``efficiency_passes`` detector passes (default ``train_passes``; the first
    ``train_passes`` of them are the flow's), so that its statistical precision beats the oversampled test's.
    ``calibration_passes``: the detector passes the flow's width calibration is fitted on (default ``train_passes``;
    the first ``train_passes`` of them are the flow's): its noise is that sample's (docs/object_response.md).
    ``scale_passes``, ``scale_bins``: the detector passes the pull scale σ̂ is fitted on (default the flow's) and its
    bins (:meth:`ObjectResponse.fit`'s ``scale_events`` and ``scale_bins``).
    ``distill``: a :class:`~mcsurrogate.flows.distilled.DistillConfig` dict to evaluate the distilled sampler.
    ``companions``: the fraction of training truth objects that get a close companion (:func:`add_companions`,
    a new draw per detector pass; ``companion_rounds`` rounds of it, companions above ``companion_pt_min`` GeV; below
    the truth's own threshold they reach past the softest objects the surrogate is applied to, a trade measured in
    docs/object_response.md); the test truth and the other processes stay as they are.
    ``efficiency``: the classifier's settings (:class:`~.efficiency.EfficiencyConfig` fields), or a trained
    :class:`~.efficiency.EfficiencyModel` to use as it is (``efficiency_passes`` then unused): another study's of the
    same detector efficiency, e.g. of another smearing scenario (``analyses/object_response/run.py`` shares the first
    scenario's).
    ``efficiency_features``: the efficiency classifier's inputs (default: all of
    :data:`~mcsurrogate.response.objects.EFFICIENCY_FEATURES`; see :meth:`ObjectResponse.fit`).
    ``log_conditions``: the flow's conditions read in log (default: :meth:`ObjectResponse.fit`'s).
    ``calibrate_widths``: the flow's width calibration (:meth:`ObjectResponse.with_width_calibration`) on
    ``calibration_passes`` passes, and the distilled student's on the same.
    ``symmetric_eta``: the response flow reads |η| (:class:`~.objects.ObjectLayout`).
    ``floor``: also evaluate the reference against ``oversample`` more passes of its own over the same truth (what a
    perfect surrogate would score in this comparison: :attr:`ObjectStudyResult.floor`).
    ``efficiency_draws``: the efficiency and multiplicity χ²/bin are also computed for this many further draws of the
    surrogate's reconstruction decisions from its p (and of the floor's from the reference's own ε), and their bars
    are held to the means (:func:`efficiency_chi2_of_draws`, :func:`multiplicity_chi2_of_draws`; one draw scatters
    by ±0.26 and ±0.5).
    ``width_draws``: with more than one, the surrogate samples each comparison's truth this many times in all (seeds
    ``+ 10000 i``), the floor's detector as many times, and the width bar is held to the mean χ²/bin
    (:func:`width_chi2_of_draws`; one draw of correlated responses scatters by ±0.2)."""
    train_passes = check_int(train_passes, "train_passes", minimum=1)
    calibrate_widths = check_bool(calibrate_widths, "calibrate_widths")
    calibration_passes = (
        train_passes if calibration_passes is None else check_int(calibration_passes, "calibration_passes", minimum=1)
    )
    efficiency_passes = (
        train_passes if efficiency_passes is None else check_int(efficiency_passes, "efficiency_passes", minimum=1)
    )
    scale_passes = train_passes if scale_passes is None else check_int(scale_passes, "scale_passes", minimum=1)
    oversample = check_int(oversample, "oversample", minimum=1)
    efficiency_draws = check_int(efficiency_draws, "efficiency_draws", minimum=1)
    width_draws = check_int(width_draws, "width_draws", minimum=1)
    if collection not in truth.fields:
        raise InputError(f"the truth events have no collection {collection!r} (fields: {truth.fields})")
    layout = ObjectLayout(symmetric_eta=symmetric_eta)
    train_truth, test_truth = split_study_events(truth, test_fraction, seed=seed)
    companions = check_float(companions, "companions", minimum=0.0, maximum=1.0)
    companion_rounds = check_int(companion_rounds, "companion_rounds", minimum=1)
    companion_pt_min = check_float(companion_pt_min, "companion_pt_min", above=0.0)
    if "test" in (other_processes or {}):
        raise InputError("other_processes cannot be named 'test': that name is the held-out comparison's")
    t0 = time.perf_counter()
    design = (companions, companion_rounds, companion_pt_min)
    train = _passes(train_truth, detector, collection, train_passes, seed + 100, *design)
    eff_train = (
        None
        if efficiency_passes == train_passes or isinstance(efficiency, EfficiencyModel)
        else _passes(train_truth, detector, collection, efficiency_passes, seed + 100, *design)
    )
    # the pull scale's passes (the first train_passes of them are the flow's); the calibration reuses them when alike
    scale_train = (
        None
        if scale_passes == train_passes
        else _passes(train_truth, detector, collection, scale_passes, seed + 100, *design)
    )
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = ObjectResponse.fit(
        train,
        layout,
        preset=preset,
        training=training,
        efficiency=efficiency,
        efficiency_events=eff_train,
        efficiency_features=EFFICIENCY_FEATURES if efficiency_features is None else efficiency_features,
        log_conditions=tuple(LOG_CONDITIONS) if log_conditions is None else log_conditions,
        calibrate_widths=calibrate_widths and calibration_passes == train_passes,
        scale_events=scale_train,
        scale_bins=scale_bins,
        seed=seed,
        progress=progress,
    )
    calibration = None
    if calibrate_widths and calibration_passes != train_passes:
        calibration = (
            scale_train
            if scale_passes == calibration_passes
            else _passes(train_truth, detector, collection, calibration_passes, seed + 100, *design)
        )
        model = model.with_width_calibration(calibration, seed=seed)
    t_fit = time.perf_counter() - t0
    t_distill = 0.0
    if distill is not None:
        t0 = time.perf_counter()
        model = model.distill(train, distill, calibration_events=calibration, progress=progress)
        t_distill = time.perf_counter() - t0
    seconds = {"reference_training_sample": t_ref, "fit": t_fit, "distill": t_distill, "apply": 0.0}
    n_objects = 0
    floors: dict[str, ObjectEvaluation] = {}

    def compare(events: ak.Array, offset: int, name: str) -> ObjectEvaluation:
        nonlocal n_objects
        reference = _passes(events, detector, collection, oversample, seed + offset)
        rho = detector.smearing.designed_rho
        if floor:
            twin = _passes(events, detector, collection, oversample, seed + offset + 500)
            floors[name] = evaluate_objects(reference, twin, rho=rho, seed=seed)
        truth_only = _truth_only(reference, layout)
        t1 = time.perf_counter()
        generated = model.apply(truth_only, seed=seed + offset + 50)
        seconds["apply"] += time.perf_counter() - t1
        n_objects += int(ak.sum(ak.num(truth_only[layout.truth])))
        evaluation = evaluate_objects(reference, generated, rho=rho, seed=seed)
        evaluation.reliability = score_decision_draws(
            evaluation, floors.get(name), reference, layout, model, detector.efficiency, efficiency_draws, seed + offset
        )
        if width_draws > 1:

            def score(target: ObjectEvaluation, more: Iterable[ak.Array]) -> None:
                first = target.width_consistency()["chi2_per_bin"]
                target.width_draws = [first, *width_chi2_of_draws(reference, more, seed=seed)]

            draws = range(1, width_draws)
            score(evaluation, (model.apply(truth_only, seed=seed + offset + 50 + 10_000 * i) for i in draws))
            if name in floors:
                twin_seeds = (seed + offset + 500 + 10_000 * i for i in draws)
                score(floors[name], (_passes(events, detector, collection, oversample, s) for s in twin_seeds))
        return evaluation

    evaluation = compare(test_truth, 1000, "test")
    generalisation = {
        name: compare(events, 2000 + 100 * i, name) for i, (name, events) in enumerate((other_processes or {}).items())
    }
    seconds["apply_objects_per_second"] = n_objects / max(seconds["apply"], 1e-9)
    classifiers = None
    if compare_classifiers:
        classifiers = compare_efficiency_classifiers(
            model,
            train if eff_train is None else eff_train,
            _passes(test_truth, detector, collection, 1, seed + 1000),
            seed=seed,
        )
    return ObjectStudyResult(
        scenario=detector.to_dict(),
        model=model,
        evaluation=evaluation,
        generalisation=generalisation,
        seconds=seconds,
        sizes={
            "truth_events": len(truth),
            "train_events": len(train_truth),
            "test_events": len(test_truth),
            "train_passes": train_passes,
            "efficiency_passes": efficiency_passes,
            "efficiency_shared": isinstance(efficiency, EfficiencyModel),
            "calibration_passes": calibration_passes if calibrate_widths else 0,
            "scale_passes": scale_passes,
            "scale_bins": list(scale_bins),
            "oversample": oversample,
            "training_objects": int(ak.sum(ak.num(train[layout.truth]))),
        },
        classifiers=classifiers,
        floor=floors,
    )


def statistical_floor(
    truth: ak.Array,
    detector: PhotonDetector,
    *,
    collection: str = "all_photons",
    draws: int = 8,
    oversample: int = 6,
    n_boot: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """What a perfect surrogate scores on ``truth``: ``draws`` times, the reference detector (``oversample`` passes)
    against an independent set of as many passes of its own over the same truth, evaluated as
    :func:`run_object_study` evaluates a surrogate. Returns each draw's :func:`headline` and, per bar, how many
    draws meet it (``met``) and the range of each χ²/bin."""
    draws = check_int(draws, "draws", minimum=1)
    rho = detector.smearing.designed_rho
    rows = []
    for d in range(draws):
        a = _passes(truth, detector, collection, oversample, seed + 10_000 * (d + 1))
        b = _passes(truth, detector, collection, oversample, seed + 10_000 * (d + 1) + 5_000)
        rows.append(headline(evaluate_objects(a, b, rho=rho, n_boot=n_boot, seed=seed + d)))
    keys = ("efficiency_chi2_per_bin", "multiplicity_chi2_per_bin", "width_chi2_per_bin")
    return {
        "draws": rows,
        "met": {bar: sum(bool(r["met"][bar]) for r in rows) for bar in rows[0]["met"]},
        "range": {k: [min(r[k] for r in rows), max(r[k] for r in rows)] for k in keys},
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
    }


def load_or_generate_truth(
    path: str | Path,
    n_events: int,
    *,
    seed: int,
    process: Literal["ggH", "ttH"] = "ggH",
    pt_min: float = 10.0,
    n_workers: int = 1,
    progress: bool | None = None,
) -> tuple[ak.Array, dict[str, Any]]:
    """Truth H → γγ events with every final-state photon above ``pt_min`` (GeV), hadronisation on
    (:func:`~mcsurrogate.generators.generate_higgs_diphoton`), cached as Parquet at ``path`` (a file written by this
    function with the same arguments is read back; its name should say them). Returns ``(events, info)``."""
    from ..generators import generate_higgs_diphoton

    path = Path(path)
    if path.is_file():
        events = ak.from_parquet(path)
        if len(events) >= n_events:
            return events[:n_events], {"cached": str(path), "n_events": n_events}
    t0 = time.perf_counter()
    events, stats = generate_higgs_diphoton(
        n_events,
        seed=seed,
        process=process,
        hadronization=True,
        all_photons_pt_min=pt_min,
        n_workers=n_workers,
        progress=progress,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    ak.to_parquet(events, tmp)
    tmp.replace(path)
    return events, {"generated": str(path), "seconds": time.perf_counter() - t0, "stats": stats.to_dict()}


def load_study_truth(
    cache: str | Path, events: int, other_events: int, *, seed: int, n_workers: int = 1
) -> tuple[ak.Array, ak.Array, dict[str, Any]]:
    """The object study's truth samples (:func:`load_or_generate_truth`, cached in ``cache`` under names that say
    their arguments): ``events`` gg → H events of ``seed`` and ``other_events`` tt̄H events of ``seed + 1``.
    Returns ``(ggh, tth, provenance)``."""
    cache = Path(cache)
    ggh, info_ggh = load_or_generate_truth(
        cache / f"ggH_had_all_photons10_n{events}_seed{seed}.parquet", events, seed=seed, n_workers=n_workers
    )
    tth, info_tth = load_or_generate_truth(
        cache / f"ttH_had_all_photons10_n{other_events}_seed{seed + 1}.parquet",
        other_events,
        seed=seed + 1,
        process="ttH",
        n_workers=n_workers,
    )
    return ggh, tth, {"ggH": info_ggh, "ttH": info_tth}


#: the issue's bars: efficiency and multiplicity χ²/bin, core-width ratios in the bins measured to 1 %, correlations.
#: The width-ratio range is below the statistical floor as worded (the reference against an independent set of its own
#: passes falls outside 0.98–1.02 in a bin measured to 1 % in 18 of 32 draws, 7 of 8 on tt̄H at ρ = 1:
#: :func:`statistical_floor`), so the widths are also held to the bar the issue sets for efficiency and multiplicity:
#: χ²/bin ≤ 1.3 of the width ratios over all bins (the floor meets it in 29 of those 32 draws: 0.72–1.39, mean 1.01).
CHI2_BAR = 1.3
WIDTH_RATIO_BAR = (0.98, 1.02)
CORRELATION_BAR = 0.03
BARS: dict[str, Any] = {
    "chi2_per_bin": CHI2_BAR,
    "width_ratio": WIDTH_RATIO_BAR,
    "width_chi2_per_bin": CHI2_BAR,
    "correlation": CORRELATION_BAR,
}


def headline(evaluation: ObjectEvaluation) -> dict[str, Any]:
    """The numbers the issue's bars are about, and whether each is met (``widths``: the restated bar on the width
    ratios' χ²/bin; ``widths_precise_bins``: the range as the issue words it; see :data:`BARS`)."""
    s = evaluation.summary()
    w = s["widths"]
    corr = {k: v["generated"] - v["reference"] for k, v in evaluation.correlation.items()}
    designed = {k: v["generated"] - v["designed"] for k, v in evaluation.correlation.items()}
    lo, hi = WIDTH_RATIO_BAR
    precise_ok = w["precise_bins"] == 0 or (lo <= w["precise_ratio_min"] and w["precise_ratio_max"] <= hi)
    # the bar on the mean over draws of the surrogate's decisions where the study made them, else on the one draw
    efficiency = s["efficiency_chi2_per_bin_mean_of_draws"] if evaluation.efficiency_draws else None
    multiplicity = s["multiplicity_chi2_per_bin_mean_of_draws"] if evaluation.multiplicity_draws else None
    widths = s["width_chi2_per_bin_mean_of_draws"] if len(evaluation.width_draws) > 1 else None
    return _clean(
        {
            "efficiency_chi2_per_bin": s["efficiency_chi2_per_bin"],
            "efficiency_chi2_per_bin_mean_of_draws": efficiency,
            "multiplicity_chi2_per_bin": s["multiplicity"]["chi2_per_bin"],
            "multiplicity_chi2_per_bin_mean_of_draws": multiplicity,
            "width_chi2_per_bin": w["chi2_per_bin"],
            "width_chi2_per_bin_mean_of_draws": widths,
            "width_precise_bins": w["precise_bins"],
            "width_precise_ratio_range": [w["precise_ratio_min"], w["precise_ratio_max"]],
            "correlation_minus_reference": corr,
            "correlation_minus_designed": designed,
            "mass_mean_difference_gev": s["mass_mean_difference_gev"],
            "mass_mean_difference_err_gev": s["mass_mean_difference_err_gev"],
            "mass_sd_ratio": s["mass_sd_ratio"],
            "met": {
                "efficiency": (s["efficiency_chi2_per_bin"] if efficiency is None else efficiency) <= CHI2_BAR,
                "multiplicity": (s["multiplicity"]["chi2_per_bin"] if multiplicity is None else multiplicity)
                <= CHI2_BAR,
                "widths": (w["chi2_per_bin"] if widths is None else widths) <= CHI2_BAR,
                "widths_precise_bins": bool(precise_ok),
                "correlations": max(abs(v) for v in corr.values()) <= CORRELATION_BAR,
            },
        }
    )


def write_study_report(
    results: Mapping[str, ObjectStudyResult], out: str | Path, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Write ``report.json`` (strict JSON), one figure per scenario and sample, and ``README.md`` into ``out``;
    ``meta`` holds the command, seeds, versions, machine, wall time and the truth samples' provenance."""
    import json

    from .object_plots import plot_object_evaluation

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "meta": dict(meta),
        "bars": {k: list(v) if isinstance(v, tuple) else v for k, v in BARS.items()},
        "scenarios": {},
    }
    for name, res in results.items():
        entry = res.to_dict()
        entry["headline"] = {"test": headline(res.evaluation)} | {k: headline(v) for k, v in res.generalisation.items()}
        report["scenarios"][name] = entry
        plot_object_evaluation(res.evaluation, out / f"{name}_test.png", f"{name}: held-out gg→H truth")
        for other, ev in res.generalisation.items():
            plot_object_evaluation(ev, out / f"{name}_{other}.png", f"{name}: {other} truth (not trained on)")
    (out / "report.json").write_text(json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")
    (out / "README.md").write_text(_readme(report))
    return report


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    return f"{x:.{digits}f}"


def _readme(report: Mapping[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# Object-level detector response (issue 31): results",
        "",
        "Produced by `analyses/object_response/run.py`; `report.json` holds every number, the PNGs the figures.",
        "",
        f"- command: `{meta.get('command')}`",
        f"- seeds: {meta.get('seeds')}",
        f"- versions: {meta.get('versions')}",
        f"- machine: {meta.get('machine')}",
        (
            f"- wall time: {_fmt(meta.get('wall_seconds', 0) / 60, 1)} min (CPU time of the process: "
            f"{_fmt(meta.get('cpu_seconds_this_process', 0) / 60, 1)} min; Pythia workers not included)"
        ),
        f"- truth samples: {meta.get('samples')}",
        "",
        (
            "Bars (issue 31): efficiency and multiplicity χ²/bin ≤ 1.3, core-width ratios 0.98–1.02 in the bins "
            "measured to 1 % (`widths_precise_bins`), correlations within ±0.03 of the reference. The width range is "
            "below the statistical floor as worded, so the widths are also held to χ²/bin ≤ 1.3 of their ratios "
            "(`widths`). Each *floor* row is the reference detector against as many passes more of its own over the "
            "same truth: what a perfect surrogate scores in that comparison. The efficiency and the multiplicity are "
            "held to the mean χ²/bin over independent draws of the surrogate's reconstruction decisions from its p "
            "(of the floor's from the reference's own ε) against the same reference; in brackets the one draw behind "
            "the other figures. Where the study drew the surrogate (and the floor's detector) more than once, the "
            "widths are held to the mean χ²/bin over those samples, the first one's in brackets."
        ),
        "",
        "| scenario | sample | eff. χ²/bin | mult. χ²/bin | width χ²/bin | precise bins: ratio range | ρ(E_T, η, φ) ref → surrogate | Δ⟨m_γγ⟩ [GeV] | SD ratio | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, sample: str, h: Mapping[str, Any], rho: str) -> str:
        met = ", ".join(k for k, v in h["met"].items() if v) or "none"
        missed = [k for k, v in h["met"].items() if not v]
        lo, hi = h["width_precise_ratio_range"]
        eff = _fmt(h["efficiency_chi2_per_bin"])
        if h.get("efficiency_chi2_per_bin_mean_of_draws") is not None:
            eff = f"{_fmt(h['efficiency_chi2_per_bin_mean_of_draws'])} ({eff})"
        mult = _fmt(h["multiplicity_chi2_per_bin"])
        if h.get("multiplicity_chi2_per_bin_mean_of_draws") is not None:
            mult = f"{_fmt(h['multiplicity_chi2_per_bin_mean_of_draws'])} ({mult})"
        width = _fmt(h["width_chi2_per_bin"])
        if h.get("width_chi2_per_bin_mean_of_draws") is not None:
            width = f"{_fmt(h['width_chi2_per_bin_mean_of_draws'])} ({width})"
        return (
            f"| {name} | {sample} | {eff} | {mult} | "
            f"{width} | {h['width_precise_bins']}: {_fmt(lo, 3)}–{_fmt(hi, 3)} | {rho} | "
            f"{_fmt(h['mass_mean_difference_gev'], 3)} ± {_fmt(h['mass_mean_difference_err_gev'], 3)} | "
            f"{_fmt(h['mass_sd_ratio'], 3)} | {met}{'; not: ' + ', '.join(missed) if missed else ''} |"
        )

    for name, entry in report["scenarios"].items():
        for sample, h in entry["headline"].items():
            ev = entry["test"] if sample == "test" else entry["generalisation"][sample]
            rho = ", ".join(
                f"{_fmt(ev['correlation'][f]['reference'])} → {_fmt(ev['correlation'][f]['generated'])}"
                for f in ("pt", "eta", "phi")
            )
            lines.append(row(name, sample, h, rho))
            floor = entry.get("floor", {}).get(sample)
            if floor is not None:
                shift = ", ".join(f"Δ {_fmt(floor['correlation_minus_reference'][f])}" for f in ("pt", "eta", "phi"))
                lines.append(row(name, f"{sample} floor", floor, shift))
    lines += ["", "Per scenario: training sizes, timings (s) and the efficiency classifiers compared:", ""]
    for name, entry in report["scenarios"].items():
        lines.append(
            f"- **{name}**: sizes {entry['sizes']}; seconds { {k: round(v, 1) for k, v in entry['seconds'].items()} }"
        )
        if entry.get("efficiency_classifiers"):
            c = entry["efficiency_classifiers"]
            lines.append(
                f"  - efficiency on held-out objects: MLP + Platt log-loss {_fmt(c['mlp_platt']['log_loss'], 4)}, "
                f"ECE {_fmt(c['mlp_platt']['ece'], 4)}; HistGradientBoosting + isotonic log-loss "
                f"{_fmt(c['hist_gradient_boosting_isotonic']['log_loss'], 4)}, ECE "
                f"{_fmt(c['hist_gradient_boosting_isotonic']['ece'], 4)}"
            )
    notes = meta.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


#: the efficiency classifier's input sets :func:`efficiency_generalisation` compares by default
EFFICIENCY_FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": EFFICIENCY_FEATURES,
    "without n_objects": ("pt", "eta", "mu", "dr_nearest"),
}


def efficiency_generalisation(
    truth: ak.Array,
    other: ak.Array,
    detector: PhotonDetector,
    *,
    collection: str = "all_photons",
    passes: int = 16,
    test_passes: int = 6,
    seeds: tuple[int, ...] = (1, 2, 3, 4),
    feature_sets: Mapping[str, tuple[str, ...]] | None = None,
    efficiency: Mapping[str, Any] | None = None,
    test_fraction: float = 0.2,
    companions: float = 0.0,
    companion_rounds: int = 1,
    seed: int = 1,
) -> dict[str, Any]:
    """How well the efficiency classifier trained on ``truth`` (the training split of :func:`run_object_study`'s,
    ``passes`` detector passes, with ``companions`` and ``companion_rounds`` as there) carries over to ``other`` truth
    (``test_passes`` passes): for each feature set and network seed, and for HistGradientBoosting, the χ²/bin of the efficiency vs E_T, η, μ (a Bernoulli draw from the
    predicted p against the reference's outcomes, binomial errors on both), the mean p and the rms of p − ε against
    the reference's own ε, and the same for the mean p of the seeds (an ensemble). The reference's ε itself is the
    floor (χ² ≈ 1).

    ``coverage``: how the two samples fill the classifier's context inputs (quantiles of ΔR to the nearest truth
    object, the object-count distribution), and per ΔR bin the reference's ε and each model's mean p − ε on
    ``other``: where a model extrapolates beyond what ``truth`` holds, its bias shows there."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from .efficiency import EfficiencyConfig
    from .objects import EFFICIENCY_TRANSFORMS

    sets = dict(feature_sets or EFFICIENCY_FEATURE_SETS)
    layout = ObjectLayout()
    train_truth, _ = split_study_events(truth, test_fraction, seed=seed)
    t, found, _, _ = training_pairs(
        _passes(train_truth, detector, collection, passes, seed + 100, companions, companion_rounds), layout
    )
    to, fo, _, _ = training_pairs(_passes(other, detector, collection, test_passes, seed + 2000), layout)
    xo = to.efficiency_features()
    eps = detector.efficiency(xo[:, 0], xo[:, 1], xo[:, 2], xo[:, 4])

    dr_edges = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, np.inf])
    dr_bin = np.digitize(xo[:, 4], dr_edges) - 1
    n_dr = np.bincount(dr_bin, minlength=len(dr_edges) - 1)

    def by_dr(p: np.ndarray) -> list[float | None]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return _finite(np.bincount(dr_bin, p - eps, minlength=len(n_dr)) / n_dr)

    def score(p: np.ndarray) -> dict[str, Any]:
        return {
            "chi2_per_bin": efficiency_chi2_of_draws(xo, fo, p, 1, seed)[0],
            "mean_p": float(p.mean()),
            "rms_p_minus_reference_epsilon": float(np.sqrt(np.mean((p - eps) ** 2))),
            "mean_p_minus_reference_epsilon_by_dr": by_dr(p),
        }

    out: dict[str, Any] = {
        "companions": companions,
        "companion_rounds": companion_rounds,
        "n_train_objects": len(found),
        "n_other_objects": len(fo),
        "reference_epsilon": score(eps) | {"mean_p": float(eps.mean())},
        "coverage": _coverage(t.efficiency_features(), xo, found, fo, eps, dr_edges, dr_bin),
        "mlp": {},
    }
    for name, features in sets.items():
        cols = [EFFICIENCY_FEATURES.index(f) for f in features]
        transforms = [EFFICIENCY_TRANSFORMS[c] for c in cols]
        x = t.efficiency_features(features)
        out["mlp"][name] = {}
        probabilities = []
        for s in seeds:
            cfg = EfficiencyConfig.from_dict({"seed": s} | dict(efficiency or {}))
            model = EfficiencyModel(list(features), transforms, cfg).fit(x, found)
            probabilities.append(model.probability(xo[:, cols]))
            out["mlp"][name][f"seed {s}"] = score(probabilities[-1])
        if len(seeds) > 1:  # what averaging the seeds' networks would give
            out["mlp"][name]["mean of the seeds"] = score(np.mean(probabilities, axis=0))
    hgb = HistGradientBoostingClassifier(max_iter=300, early_stopping=True, random_state=seed)
    hgb.fit(t.efficiency_features(), found)
    out["hist_gradient_boosting"] = score(hgb.predict_proba(xo)[:, 1])
    return out


def _coverage(
    x: np.ndarray,
    xo: np.ndarray,
    found: np.ndarray,
    fo: np.ndarray,
    eps: np.ndarray,
    dr_edges: np.ndarray,
    dr_bin: np.ndarray,
) -> dict[str, Any]:
    """How the training (``x``) and the other process's (``xo``) objects fill ΔR to the nearest object (column 4) and
    the object count (column 3); per ΔR bin of the other process: objects, measured and reference efficiency."""
    q = [0.01, 0.05, 0.1, 0.25, 0.5]
    n_dr = np.bincount(dr_bin, minlength=len(dr_edges) - 1)
    train_bin = np.digitize(x[:, 4], dr_edges) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        measured = np.bincount(dr_bin, fo.astype(np.float64), minlength=len(n_dr)) / n_dr
        expected = np.bincount(dr_bin, eps, minlength=len(n_dr)) / n_dr
    counts = [np.bincount(v[:, 3].astype(np.int64)) for v in (x, xo)]
    return {
        "dr_quantiles": q,
        "dr_nearest_quantiles_train": np.quantile(x[:, 4], q).tolist(),
        "dr_nearest_quantiles_other": np.quantile(xo[:, 4], q).tolist(),
        "dr_edges": [float(e) if np.isfinite(e) else None for e in dr_edges],
        "fraction_train_by_dr": (np.bincount(train_bin, minlength=len(n_dr)) / len(x)).tolist(),
        "fraction_other_by_dr": (n_dr / len(xo)).tolist(),
        "reference_efficiency_other_by_dr": _finite(measured),
        "reference_epsilon_other_by_dr": _finite(expected),
        "n_objects_fraction_train": (counts[0] / len(x)).tolist(),
        "n_objects_fraction_other": (counts[1] / len(xo)).tolist(),
        "train_efficiency": float(found.mean()),
    }
