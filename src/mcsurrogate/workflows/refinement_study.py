"""ELSA's refinement steps side by side (issue 34): a surrogate's plain events, the same reweighted, the reweighted
ones made unweighted by hit-or-miss, and LASER's refined events, compared with held-out MC.

What ``benchmarks/bench_laser.py`` (the HIGGS-like benchmark) and ``analyses/laser_refinement/run.py`` (that and the
detector-response task's asymmetric tails) run:

* :func:`refinement_candidates`: the candidates, as :class:`Candidate` (feature matrix and optional weights) — for
  an unconditional surrogate ``n`` events each, for a conditional one an event per condition row (the features are
  then the targets followed by the conditions, as the reweighting's);
* :func:`compare_candidates`: each candidate against the held-out MC: the classifier two-sample test (AUC with a
  bootstrap interval and permutation p-value) and the per-feature 1-D Wasserstein distance over its MC-vs-MC baseline;
* :func:`tail_fractions`: the fraction of each response below the reference's core mean − 2 σ_core (paper A's
  asymmetric-tail measure), with its binomial (Kish for weights) error;
* :func:`spurious_signal`: the signal strength fitted in one variable when the data are the held-out MC and the
  background model the candidate's histogram (a Gaussian signal template);
* :func:`higgs_refinement_study`: all of it on the HIGGS-like benchmark — train an unconditional flow, fit its
  reweighting, make and compare the candidates, and the m_bb spurious signal of a 125 GeV resonance.

``reweighted_unweighted`` is the refinement's target at the refined events' count: the comparison at equal
effective size (a weighted candidate's classifier learns from its Kish-reduced statistics, so its AUC is not
comparable with an unweighted one's at equal counts). For a conditional surrogate it is drawn per condition row:
each row draws from the flow at its condition and keeps a draw with probability w / max w, until one is kept —
an exact draw from p(x|c)·w(x, c) for every row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from scipy import stats

from ..arguments import check_int, describe
from ..errors import InputError
from ..records import feature_matrix
from ..validation.samples import kish_size

if TYPE_CHECKING:
    from ..laser import Refinement
    from ..refinement import Reweighting
    from ..surrogate import Surrogate

__all__ = [
    "Candidate",
    "HiggsRefinementStudy",
    "compare_candidates",
    "higgs_refinement_study",
    "hit_or_miss_per_row",
    "refinement_candidates",
    "spurious_signal",
    "tail_fractions",
]


@dataclass
class Candidate:
    """A candidate sample: ``events`` (n, d) in the comparison's feature order, ``weights`` (n,) or ``None``."""

    events: np.ndarray
    weights: np.ndarray | None = None

    @property
    def kish_efficiency(self) -> float:
        """(Σw)²/(n Σw²); 1 for an unweighted candidate."""
        n = len(self.events)
        return 1.0 if self.weights is None or not n else kish_size(self.weights, n) / n


def hit_or_miss_per_row(
    surrogate: Surrogate, reweighting: Reweighting, c: np.ndarray, seed: int, *, max_rounds: int = 1000
) -> np.ndarray:
    """One unweighted event (targets, original units) per condition row of ``c`` from p(x|c)·w(x, c): each row draws
    from the flow at its condition and keeps the draw with probability w / max w (max w = the reweighting's clip over
    its normalisation), until one is kept (rounds of one draw for every row still open; seeded). Raises
    :class:`InputError` when rows are still open after ``max_rounds`` (weights far below their maximum there)."""
    max_rounds = check_int(max_rounds, "max_rounds", minimum=1)
    rng = np.random.default_rng(seed)
    w_max = reweighting.clip / reweighting.normalisation
    out = np.full((len(c), len(surrogate.targets)), np.nan)
    open_rows = np.arange(len(c))
    for _ in range(max_rounds):
        if not len(open_rows):
            return out
        x = surrogate.sample_array(conditions=c[open_rows], seed=rng, progress=False)
        finite = np.isfinite(x).all(axis=1)
        w = np.zeros(len(x))
        w[finite] = reweighting.weights(np.hstack([x[finite], c[open_rows][finite]]))
        keep = rng.random(len(x)) * w_max < w
        out[open_rows[keep]] = x[keep]
        open_rows = open_rows[~keep]
    raise InputError(
        f"hit-or-miss: {len(open_rows)} of {len(c)} condition rows kept no draw in {max_rounds} rounds (their weights "
        f"lie far below the maximum {w_max:.3g})"
    )


def refinement_candidates(
    surrogate: Surrogate,
    reweighting: Reweighting,
    *,
    n: int | None = None,
    conditions: np.ndarray | None = None,
    seed: int = 0,
    refine: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Candidate], Refinement, dict[str, float]]:
    """The candidates of the module docstring (``flow``, ``reweighted``, ``reweighted_distilled``,
    ``reweighted_unweighted``, ``refined``): ``n`` events each from an unconditional ``surrogate``, or one per row of
    ``conditions`` (an (n, len(surrogate.conditions)) matrix, original units) from a conditional one. ``refine``:
    keyword arguments of :func:`mcsurrogate.laser.refine` (``chains``, ``warmup``, ``thin`` ...). Seeds: ``seed`` + 2
    (flow), + 3 (the events weighted), + 4 (refinement), + 5/+ 6 (hit-or-miss).

    Returns the candidates, the :class:`~mcsurrogate.laser.Refinement` and the costs: plain sampling events/s and
    the refined events/s (HMC, warm-up included; distillation apart, in ``refinement.agreement.seconds``)."""
    from ..event_weights import unweight

    if surrogate.conditional:
        if conditions is None or n is not None:
            raise InputError("a conditional surrogate's candidates take conditions (one event per row), not n")
        c = np.asarray(conditions, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != len(surrogate.conditions):
            raise InputError(
                f"conditions must be an (n, {len(surrogate.conditions)}) matrix of {surrogate.conditions}, "
                f"got {describe(conditions)}"
            )
        count = len(c)
    else:
        if conditions is not None or n is None:
            raise InputError("an unconditional surrogate's candidates take n, not conditions")
        c = None
        count = check_int(n, "n", minimum=1)

    def draw(s: int) -> np.ndarray:
        if c is None:
            return surrogate.sample_array(count, seed=s, progress=False)
        return np.hstack([surrogate.sample_array(conditions=c, seed=s, progress=False), c])

    t = time.perf_counter()
    plain = draw(seed + 2)
    sample_rate = count / (time.perf_counter() - t)
    other = draw(seed + 3)
    w = reweighting.weights(other)
    refined = reweighting.refine(surrogate, None if c is not None else count, seed + 4, conditions=c, **(refine or {}))
    x_refined = feature_matrix(refined.events, list(surrogate.targets) + list(surrogate.conditions))
    w_mlp = refined.distilled_weights(other)
    if c is None:
        w_max = reweighting.clip / reweighting.normalisation  # the largest weight the clipped ratio can give
        pool = surrogate.sample_array(math.ceil(1.3 * count * w_max / w.mean()), seed=seed + 5, progress=False)
        kept = unweight(reweighting.weights(pool), seed=seed + 6)
        unweighted = pool[kept[:count]]
    else:
        unweighted = np.hstack([hit_or_miss_per_row(surrogate, reweighting, c, seed + 5), c])
    candidates = {
        "flow": Candidate(plain),
        "reweighted": Candidate(other, w),
        "reweighted_distilled": Candidate(other, w_mlp),
        "reweighted_unweighted": Candidate(unweighted),
        "refined": Candidate(x_refined),
    }
    costs = {"flow_events_per_second": sample_rate, "refined_events_per_second": refined.events_per_second}
    return candidates, refined, costs


def compare_candidates(
    reference: np.ndarray,
    candidates: Mapping[str, Candidate],
    features: Sequence[str],
    *,
    seed: int = 0,
    n_bootstrap: int = 50,
    w1_features: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each candidate against the held-out ``reference`` (n, d) in ``features`` order: ``c2st`` over all features
    (AUC, its bootstrap interval and the permutation p-value at the 5 % level's minimum permutations; boosted trees,
    one repeat) and ``w1_ratio`` over ``w1_features`` (default: all; e.g. the targets alone where the conditions are
    the reference's own): per feature W1 over the MC-vs-MC baseline at the comparison's sizes — max, its feature,
    median, the features flagged above baseline + 3 SD, all of them; plus the candidate's Kish efficiency."""
    names = list(features)
    chosen = names if w1_features is None else list(w1_features)
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise InputError(f"w1_features {unknown} are not among the features {names}")
    cols = [names.index(f) for f in chosen]
    from ..validation.c2st import c2st, minimum_permutations
    from ..validation.divergences import compare_features

    out: dict[str, dict[str, Any]] = {}
    for name, cand in candidates.items():
        r = c2st(
            reference,
            cand.events,
            weights_candidate=cand.weights,
            n_permutations=minimum_permutations(0.05),
            n_repeats=1,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        divergences = compare_features(
            reference[:, cols], cand.events[:, cols], chosen, weights_candidate=cand.weights, seed=seed
        )
        ratios = {f: fd.w1_ratio for f, fd in divergences.items()}
        worst = max(ratios, key=ratios.__getitem__)
        out[name] = {
            "events": len(cand.events),
            "kish_efficiency": cand.kish_efficiency,
            "c2st": {"auc": float(r.auc), "auc_ci": [float(r.auc_ci[0]), float(r.auc_ci[1])], "p_value": r.p_value},
            "w1_ratio": {
                "max": ratios[worst],
                "max_feature": worst,
                "median": float(np.median(list(ratios.values()))),
                "flagged_features": [f for f, fd in divergences.items() if fd.flagged],
                "by_feature": ratios,
            },
        }
    return out


def tail_fractions(
    reference: np.ndarray, candidates: Mapping[str, Candidate], columns: Sequence[str], *, sigmas: float = 2.0
) -> dict[str, Any]:
    """Per column of ``columns`` (responses, the first len(columns) columns of every matrix): the fraction of events
    below the reference's core mean − ``sigmas`` σ_core (:func:`~mcsurrogate.response.resolution.tail_cut` of the
    reference), for the reference and each candidate (weighted where it has weights), with its error
    √(f(1 − f)/n_eff) (n_eff: the Kish size), and each candidate's ratio to the reference and that ratio's error."""
    from ..response.resolution import tail_cut

    out: dict[str, Any] = {"sigmas": sigmas, "columns": {}}
    for j, col in enumerate(columns):
        cut = tail_cut(reference[:, j], sigmas)
        f_ref = float(np.mean(reference[:, j] < cut))
        e_ref = math.sqrt(f_ref * (1 - f_ref) / len(reference))
        rows: dict[str, Any] = {"cut": float(cut), "reference": {"fraction": f_ref, "error": e_ref}}
        for name, cand in candidates.items():
            below = cand.events[:, j] < cut
            w = np.ones(len(below)) if cand.weights is None else cand.weights
            f = float(np.sum(w * below) / np.sum(w))
            e = math.sqrt(f * (1 - f) / kish_size(w, len(w)))
            ratio = f / f_ref if f_ref > 0 else math.inf
            rows[name] = {
                "fraction": f,
                "error": e,
                "ratio_to_reference": ratio,
                "ratio_error": ratio * math.hypot(e / f, e_ref / f_ref) if f > 0 and f_ref > 0 else None,
            }
        out["columns"][col] = rows
    return out


def spurious_signal(
    reference: np.ndarray,
    candidates: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray | None]],
    edges: np.ndarray,
    *,
    mass: float,
    sigma: float,
    excess: float,
) -> dict[str, Any]:
    """The spurious signal of each candidate in one variable: data = the held-out ``reference`` values, background
    model = the candidate's histogram (values, or (values, weights)) with a free normalisation, signal = a Gaussian
    at ``mass`` of width ``sigma`` (same units, e.g. GeV) whose μ = 1 yield is ``excess`` of the reference events
    within ±1 σ of ``mass``; bins ``edges``. Returns the setup and per candidate μ̂, σ and the signed Z
    (:func:`~mcsurrogate.stats.measure_spurious_signal`)."""
    from ..stats import fill_template, measure_spurious_signal
    from ..stats.templates import gaussian_template

    under_peak = int(np.sum(np.abs(reference - mass) < sigma))
    signal_yield = excess * under_peak / (2 * stats.norm.cdf(1.0) - 1)
    signal = gaussian_template(edges, mean=mass, sigma=sigma, total=signal_yield)
    data = fill_template(reference, bins=edges)
    out: dict[str, Any] = {
        "setup": {
            "range": [float(edges[0]), float(edges[-1])],
            "bins": len(edges) - 1,
            "signal_mass": mass,
            "signal_sigma": sigma,
            "signal_yield": signal_yield,
            "mu_1_excess": f"{excess:g} of the {under_peak} reference events within ±1 sigma",
            "data_events": len(reference),
        }
    }
    for name, cand in candidates.items():
        values, weights = cand if isinstance(cand, tuple) else (cand, None)
        out[name] = measure_spurious_signal(signal, fill_template(values, bins=edges, weights=weights), data).to_dict()
    return out


@dataclass
class HiggsRefinementStudy:
    """What :func:`higgs_refinement_study` made: the trained ``model``, its ``reweighting``, the ``candidates`` with
    the LASER result ``refined`` and the sampling ``costs``, the comparison ``rows`` (:func:`compare_candidates`),
    the ``spurious`` signal in m_bb (:func:`spurious_signal`) and the ``seconds`` of each step."""

    model: Surrogate
    reweighting: Reweighting
    candidates: dict[str, Candidate]
    refined: Refinement
    costs: dict[str, float]
    rows: dict[str, dict[str, Any]]
    spurious: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def higgs_refinement_study(
    train: ak.Array,
    held_out: np.ndarray,
    *,
    features: Sequence[str] | None = None,
    flow: Mapping[str, Any] | None = None,
    epochs: int = 20,
    refine: Mapping[str, Any] | None = None,
    floor: np.ndarray | None = None,
    mbb_resolution: float = 0.12,
    signal_excess: float = 0.05,
    seed: int = 0,
    device: str = "auto",
) -> HiggsRefinementStudy:
    """ELSA's steps on the HIGGS-like benchmark: an unconditional surrogate of ``features`` (default: the 18
    continuous ones; ``flow`` default a MAF 4 × 64; Gauss-rank, ``epochs`` at batch 512 without early stopping) trained
    on the records ``train``, its tree reweighting against the training MC (seed ``seed + 1``), the candidates of
    :func:`refinement_candidates` at ``len(held_out)`` events (``refine``: LASER's settings), plus ``mc_floor`` (the
    MC events ``floor``, a perfect generator of that size) when given, compared with the held-out MC ``held_out``
    (n, d in ``features`` order), and the spurious signal in m_bb of a 125 GeV resonance of relative width
    ``mbb_resolution`` whose μ = 1 yield is ``signal_excess`` of the MC under its peak (the cut analysis's binning)."""
    from ..amplification import CONTINUOUS_FEATURES
    from ..refinement import fit_surrogate_reweighting
    from ..surrogate import Surrogate
    from .cut_analysis import FIT_VARIABLE, fit_edges

    names = list(CONTINUOUS_FEATURES if features is None else features)
    if FIT_VARIABLE not in names:
        raise InputError(f"the features must include {FIT_VARIABLE!r} for the spurious signal, got {names}")
    held_out = np.asarray(held_out, dtype=float)
    if held_out.ndim != 2 or held_out.shape[1] != len(names):
        raise InputError(f"held_out must be (n, {len(names)}) in the features' order, got shape {held_out.shape}")
    if floor is not None and np.shape(floor)[1:] != (len(names),):
        raise InputError(f"floor must be (n, {len(names)}) in the features' order, got shape {np.shape(floor)}")
    flow = dict(flow or {"model": "maf", "blocks": 4, "hidden": 64})
    training = {"epochs": epochs, "batch_size": 512, "patience": None, "seed": seed, "device": device}
    model = Surrogate(names, flow=flow, preprocessing="gauss-rank", training=training)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    model.fit(train, progress=False)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    rw = fit_surrogate_reweighting(model, train, seed=seed + 1)
    seconds["reweighting_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    candidates, refined, costs = refinement_candidates(model, rw, n=len(held_out), seed=seed, refine=refine)
    seconds["candidates"] = time.perf_counter() - t
    if floor is not None:
        candidates["mc_floor"] = Candidate(np.asarray(floor, dtype=float))
    t = time.perf_counter()
    rows = compare_candidates(held_out, candidates, names, seed=seed)
    seconds["compare"] = time.perf_counter() - t
    col = names.index(FIT_VARIABLE)
    spurious = spurious_signal(
        held_out[:, col],
        {k: (c.events[:, col], c.weights) for k, c in candidates.items()},
        fit_edges(),
        mass=125.0,
        sigma=mbb_resolution * 125.0,
        excess=signal_excess,
    )
    return HiggsRefinementStudy(model, rw, candidates, refined, costs, rows, spurious, seconds)
