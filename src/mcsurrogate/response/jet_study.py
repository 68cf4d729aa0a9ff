"""The jet object-response study (issue 31 for jets): train an :class:`~.objects.ObjectResponse` on a reference jet
detector's truth + reco jets of one process and compare it with that detector on held-out truth of the same process
and on truth of another one, as an analyst would, through :func:`~.matching.match_objects`:

* efficiency (matched / truth jets) in bins of truth p_T, η and μ, binomial uncertainties, χ²/bin (mean over draws of
  the surrogate's reconstruction decisions, as the photon study's);
* the reco jet multiplicity per event (χ²/bin, mean over the same kind of draws);
* the core width of the p_T response of the matched jets in bins of p_T, η, μ (χ²/bin of the width ratios, event
  bootstrap errors);
* m_jj of the two leading reco jets and H_T, the scalar sum of the reco jets' p_T (χ²/bin of the two histograms);
* the b-tag rate of the matched jets per truth flavour (b, c, light) in bins of truth p_T and |η|, binomial
  uncertainties, χ²/bin (mean over draws of the surrogate's tag decisions on the reference's matched jets).

The reference (:class:`JetDetector`) is the HIGGS-like benchmark's parametric detector: a p_T scale factor with the
benchmark's jet resolution (η, φ kept), b-tagging by flavour, and :data:`~.reference_detector.JET_EFFICIENCY`. The
surrogate models the efficiency and the p_T response (``fields=("pt",)``); η and φ are copied from truth as the
reference keeps them, the mass scales with p_T as the reference's four-momentum scale does, and the b-tag is learned
as p(tag | reconstructed, p_T, η, μ, flavour) (``ObjectLayout.tags``/``tag_inputs``) and drawn per jet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import hist
import numpy as np

from ..arguments import check_int, check_records
from ..errors import InputError
from .evaluation import width_ratio_consistency
from .matching import match_objects
from .object_study import (
    CHI2_BAR,
    BinnedEfficiency,
    _bernoulli_draws,
    _binned_efficiency,
    _clean,
    _efficiency_chi2,
    _multiplicity_chi2,
    _Sample,
    score_decision_draws,
    split_study_events,
)
from .objects import ObjectLayout, ObjectResponse
from .reference_detector import JET_EFFICIENCY, ParametricEfficiency, reconstruct_jets
from .resolution import BinnedWidths

__all__ = [
    "FLAVOURS",
    "JET_BINS",
    "JET_LAYOUT",
    "OBSERVABLE_BINS",
    "TAG_BINS",
    "JetDetector",
    "JetEvaluation",
    "JetStudyResult",
    "evaluate_jets",
    "load_or_generate_truth_jets",
    "run_jet_study",
    "tag_chi2_of_draws",
    "write_jet_report",
]

#: bins of the truth variables: p_T in GeV (the truth jets start at 20 GeV), η, μ
JET_BINS = {
    "pt": np.array([20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 1000.0]),
    "eta": np.linspace(-2.5, 2.5, 11),
    "mu": np.linspace(0, 40, 9),
}
#: bins of the event observables (GeV): m_jj of the two leading reco jets, H_T of all reco jets
OBSERVABLE_BINS = {"m_jj": np.linspace(0.0, 1000.0, 41), "h_t": np.linspace(0.0, 1500.0, 31)}
#: the jets' layout: truth ``truth_jets``, reco ``jets`` (as :func:`~.reference_detector.reconstruct_jets` writes
#: them), a p_T response only, |η| read (the detector model is symmetric in η), the b-tag learned by flavour
JET_LAYOUT = ObjectLayout(
    truth="truth_jets",
    reco="jets",
    fields=("pt",),
    max_dr=0.2,
    symmetric_eta=True,
    tags=("btag",),
    tag_inputs=("flavour",),
)
#: the truth flavours the b-tag is compared in (the reference's labels: B hadron, C hadron, neither)
FLAVOURS = {"b": 5, "c": 4, "light": 0}
#: bins of the b-tag rates: truth p_T (GeV) and |η|
TAG_BINS = {"pt": JET_BINS["pt"], "abs_eta": np.linspace(0.0, 2.5, 6)}


@dataclass(frozen=True)
class JetDetector:
    """The reference jet detector: the HIGGS-like benchmark's ``model`` (a
    :class:`~mcsurrogate.generators.higgs_benchmark.DetectorModel`; its default when ``None``) and ``efficiency``."""

    model: Any = None
    efficiency: ParametricEfficiency = JET_EFFICIENCY

    def reconstruct(self, truth: ak.Array, *, seed: int, collection: str = "jets") -> ak.Array:
        """One pass of :func:`~.reference_detector.reconstruct_jets` over ``truth[collection]``."""
        return reconstruct_jets(truth, self.model, self.efficiency, seed=seed, collection=collection)

    def passes(self, truth: ak.Array, n: int, seed: int, *, collection: str = "jets") -> ak.Array:
        """``n`` passes over the same truth events (seeds ``seed``, ``seed + 1``, …), concatenated."""
        n = check_int(n, "passes", minimum=1)
        return ak.concatenate([self.reconstruct(truth, seed=seed + k, collection=collection) for k in range(n)])

    @property
    def detector_model(self) -> Any:
        """The benchmark's ``DetectorModel`` this detector runs (its default when ``model`` is None)."""
        from ..generators.higgs_benchmark import DEFAULT_DETECTOR

        return DEFAULT_DETECTOR if self.model is None else self.model

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.detector_model.to_dict(), "efficiency": self.efficiency.to_dict()}


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    h = hist.Hist(hist.axis.Variable(edges, underflow=False, overflow=False), storage=hist.storage.Int64())
    h.fill(values)
    return np.asarray(h.values(), dtype=np.float64)


def _histogram_chi2(reference: np.ndarray, generated: np.ndarray, min_count: int = 10) -> dict[str, float]:
    """χ²/bin of two histograms of the same number of events (Poisson errors on both), over the bins holding at least
    ``min_count`` entries of the two together."""
    var = reference + generated
    ok = var >= min_count
    chi2 = (generated[ok] - reference[ok]) ** 2 / var[ok]
    return {"chi2_per_bin": float(chi2.mean()) if ok.any() else float("nan"), "n_bins": int(ok.sum())}


@dataclass
class JetEvaluation:
    """Reference vs surrogate jets on the same truth events (module docstring)."""

    efficiency: dict[str, BinnedEfficiency]
    multiplicity_reference: list[int]
    multiplicity_generated: list[int]
    widths: dict[str, BinnedWidths]
    observables: dict[str, dict[str, Any]]
    n_events: dict[str, int]
    reliability: dict[str, float] | None = None
    efficiency_draws: list[float] = field(default_factory=list)
    multiplicity_draws: list[float] = field(default_factory=list)
    #: the b-tag rate of the matched jets per flavour and variable (keys ``b_pt``, ``light_abs_eta``, …)
    tags: dict[str, BinnedEfficiency] = field(default_factory=dict)
    tag_draws: list[float] = field(default_factory=list)

    def headline(self) -> dict[str, Any]:
        """The numbers the bars are about (χ²/bin ≤ 1.3 each; efficiency and multiplicity on the mean over draws
        where they were made, else on the one draw) and whether each is met."""
        one_draw = _efficiency_chi2(self.efficiency)
        efficiency = float(np.mean(self.efficiency_draws)) if self.efficiency_draws else one_draw
        scale = self.n_events["generated"] / max(self.n_events["reference"], 1)
        mult_one = _multiplicity_chi2(
            np.asarray(self.multiplicity_reference), np.asarray(self.multiplicity_generated), scale
        )["chi2_per_bin"]
        multiplicity = float(np.mean(self.multiplicity_draws)) if self.multiplicity_draws else mult_one
        w = width_ratio_consistency({"pt": self.widths}, 0.01)
        out = {
            "efficiency_chi2_per_bin": efficiency,
            "efficiency_chi2_per_bin_one_draw": one_draw,
            "multiplicity_chi2_per_bin": multiplicity,
            "multiplicity_chi2_per_bin_one_draw": mult_one,
            "width_chi2_per_bin": w["chi2_per_bin"],
            "width_precise_bins": w["precise_bins"],
            "width_precise_ratio_range": [w["precise_ratio_min"], w["precise_ratio_max"]],
        } | {f"{name}_chi2_per_bin": o["chi2_per_bin"] for name, o in self.observables.items()}
        out |= {
            f"{name}_mean_difference_gev": o["mean_generated"] - o["mean_reference"]
            for name, o in self.observables.items()
        }
        met = {
            "efficiency": efficiency <= CHI2_BAR,
            "multiplicity": multiplicity <= CHI2_BAR,
            "widths": w["chi2_per_bin"] <= CHI2_BAR,
        } | {name: o["chi2_per_bin"] <= CHI2_BAR for name, o in self.observables.items()}
        if self.tags:
            tag_one = _efficiency_chi2(self.tags)
            tag = float(np.mean(self.tag_draws)) if self.tag_draws else tag_one
            out |= {"btag_chi2_per_bin": tag, "btag_chi2_per_bin_one_draw": tag_one}
            met["btag"] = tag <= CHI2_BAR
        out["met"] = met
        return _clean(out)

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "headline": self.headline(),
                "n_events": self.n_events,
                "efficiency": {k: v.to_dict() for k, v in self.efficiency.items()},
                "multiplicity_reference": self.multiplicity_reference,
                "multiplicity_generated": self.multiplicity_generated,
                "widths": {k: w.to_dict() for k, w in self.widths.items()},
                "observables": self.observables,
                "efficiency_reliability": self.reliability,
                "efficiency_chi2_per_bin_draws": self.efficiency_draws,
                "multiplicity_chi2_per_bin_draws": self.multiplicity_draws,
                "btag": {k: v.to_dict() for k, v in self.tags.items()},
                "btag_chi2_per_bin_draws": self.tag_draws,
            }
        )


def evaluate_jets(
    reference: ak.Array,
    generated: ak.Array,
    *,
    layout: ObjectLayout = JET_LAYOUT,
    bins: Mapping[str, np.ndarray] | None = None,
    n_boot: int = 20,
    seed: int = 0,
) -> JetEvaluation:
    """Compare a reference jet detector's output with a surrogate's on the same truth events (module docstring):
    records with ``layout.reco``, ``layout.truth`` and ``layout.pileup``, any number of jets per event."""
    check_records(reference, "reference")
    check_records(generated, "generated")
    b = JET_BINS | dict(bins or {})
    ref = _Sample.of(reference, layout.reco, layout.truth, layout.pileup, layout.max_dr)
    gen = _Sample.of(generated, layout.reco, layout.truth, layout.pileup, layout.max_dr)
    efficiency = ref.binned_efficiencies(gen, b)
    widths = ref.binned_widths(gen, 0, b, n_boot, seed)
    values = {
        "reference": {"m_jj": ref.mass, "h_t": _ht(reference[layout.reco])},
        "generated": {"m_jj": gen.mass, "h_t": _ht(generated[layout.reco])},
    }
    observables = {}
    for name, edges in OBSERVABLE_BINS.items():
        r = _histogram(values["reference"][name], edges)
        g = _histogram(values["generated"][name], edges)
        observables[name] = {
            "edges": edges.tolist(),
            "reference": r.tolist(),
            "generated": g.tolist(),
            "mean_reference": float(np.mean(values["reference"][name])),
            "mean_generated": float(np.mean(values["generated"][name])),
        } | _histogram_chi2(r, g)
    n_max = int(max(ref.multiplicity.max(initial=0), gen.multiplicity.max(initial=0))) + 1
    tags = (
        _tag_rates(_tagged_jets(reference, layout), _tagged_jets(generated, layout))
        if "btag" in layout.tags and "flavour" in layout.tag_inputs
        else {}
    )
    return JetEvaluation(
        efficiency=efficiency,
        multiplicity_reference=np.bincount(ref.multiplicity, minlength=n_max).tolist(),
        multiplicity_generated=np.bincount(gen.multiplicity, minlength=n_max).tolist(),
        widths=widths,
        observables=observables,
        n_events={"reference": len(reference), "generated": len(generated)},
        tags=tags,
    )


def _tagged_jets(events: ak.Array, layout: ObjectLayout) -> dict[str, np.ndarray]:
    """The matched jets of ``events`` (ΔR < ``layout.max_dr``): truth p_T (GeV), |η|, μ, flavour, and the reco b-tag."""
    truth, reco = events[layout.truth], events[layout.reco]
    for collection, name in ((truth, "flavour"), (reco, "btag")):
        if name not in collection.fields:
            raise InputError(f"the jets have no field {name!r} to compare b-tags with (fields: {collection.fields})")
    t, r = match_objects(truth, reco, max_dr=layout.max_dr).pairs(truth, reco)
    n_pairs = ak.to_numpy(ak.num(t))
    mu = np.repeat(ak.to_numpy(events[layout.pileup]).astype(np.float64), n_pairs)

    def flat(a: ak.Array) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.flatten(a)), dtype=np.float64)

    return {
        "pt": flat(t.pt),
        "eta": flat(t.eta),
        "abs_eta": np.abs(flat(t.eta)),
        "mu": mu,
        "flavour": flat(t.flavour),
        "tag": flat(r.btag) > 0.5,
    }


def _tag_rates(
    reference: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray], tag: np.ndarray | None = None
) -> dict[str, BinnedEfficiency]:
    """The b-tag rate of ``reference``'s and ``generated``'s matched jets per flavour in :data:`TAG_BINS` (``tag``:
    other decisions for ``generated``'s jets than its own)."""
    tagged = generated["tag"] if tag is None else tag
    out = {}
    for label, code in FLAVOURS.items():
        r, g = reference["flavour"] == code, generated["flavour"] == code
        for var, edges in TAG_BINS.items():
            out[f"{label}_{var}"] = _binned_efficiency(
                var, edges, reference[var][r], reference["tag"][r], generated[var][g], tagged[g]
            )
    return out


def tag_chi2_of_draws(reference: Mapping[str, np.ndarray], p: np.ndarray, draws: int, seed: int) -> list[float]:
    """χ²/bin of the b-tag rates (:data:`TAG_BINS`, per flavour) of ``draws`` Bernoulli draws from ``p`` (one
    probability per matched jet of ``reference``, from :func:`_tagged_jets`) against ``reference``'s own tags."""
    return [_efficiency_chi2(_tag_rates(reference, reference, d)) for d in _bernoulli_draws(p, draws, seed)]


def _ht(jets: ak.Array) -> np.ndarray:
    """H_T (GeV): the scalar sum of the p_T of every jet of each event."""
    return np.asarray(ak.to_numpy(ak.sum(jets.pt, axis=1)), dtype=np.float64)


@dataclass
class JetStudyResult:
    """The model, the held-out evaluation, the evaluations on other processes, the floor of each, timings (s)."""

    model: ObjectResponse
    evaluation: JetEvaluation
    generalisation: dict[str, JetEvaluation]
    floor: dict[str, JetEvaluation]
    seconds: dict[str, float]
    sizes: dict[str, int]
    detector: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        training = dict(self.model.response.metrics.get("training", {}))
        training.pop("history", None)
        return _clean(
            {
                "detector": self.detector,
                "sizes": self.sizes,
                "seconds": self.seconds,
                "model_metrics": self.model.metrics,
                "flow": self.model.response.flow_config.to_dict(),
                "flow_training": training,
                "test": self.evaluation.to_dict(),
                "generalisation": {k: v.to_dict() for k, v in self.generalisation.items()},
                "floor": {k: v.headline() for k, v in self.floor.items()},
            }
        )


def run_jet_study(
    truth: ak.Array,
    other_processes: Mapping[str, ak.Array] | None = None,
    detector: JetDetector | None = None,
    *,
    layout: ObjectLayout = JET_LAYOUT,
    train_passes: int = 8,
    efficiency_passes: int | None = None,
    oversample: int = 6,
    test_fraction: float = 0.2,
    preset: str = "affine-spline",
    training: Mapping[str, Any] | None = None,
    efficiency: Mapping[str, Any] | None = None,
    efficiency_draws: int = 8,
    floor: bool = True,
    seed: int = 0,
    progress: bool | None = None,
) -> JetStudyResult:
    """Split ``truth`` (records with ``jets`` and ``mu``, as :func:`load_or_generate_truth_jets` gives) into training
    and held-out events, pass the training truth through ``detector`` ``train_passes`` times (the efficiency
    classifier and the b-tag's ``efficiency_passes`` times, default the same; both with the ``efficiency``
    settings), fit an :class:`ObjectResponse` (p_T response, b-tag), and
    compare it with the detector on the held-out truth and on each of ``other_processes`` (``oversample`` passes each
    side; with ``floor`` also the detector against as many passes more of its own)."""
    detector = JetDetector() if detector is None else detector
    if not isinstance(detector, JetDetector):
        raise InputError(f"detector must be a JetDetector, got {type(detector).__name__}")
    check_records(truth, "truth")
    if "jets" not in truth.fields:
        raise InputError(f"the truth events need a 'jets' collection (fields: {truth.fields})")
    train_passes = check_int(train_passes, "train_passes", minimum=1)
    efficiency_passes = (
        train_passes if efficiency_passes is None else check_int(efficiency_passes, "efficiency_passes", minimum=1)
    )
    oversample = check_int(oversample, "oversample", minimum=1)
    if "test" in (other_processes or {}):
        raise InputError("other_processes cannot be named 'test': that name is the held-out comparison's")
    train_truth, test_truth = split_study_events(truth, test_fraction, seed=seed)
    t0 = time.perf_counter()
    train = detector.passes(train_truth, train_passes, seed + 100)
    eff_train = (
        None if efficiency_passes == train_passes else detector.passes(train_truth, efficiency_passes, seed + 100)
    )
    seconds = {"reference_training_sample": time.perf_counter() - t0}
    t0 = time.perf_counter()
    model = ObjectResponse.fit(
        train,
        layout,
        preset=preset,
        training=training,
        efficiency=efficiency,
        efficiency_events=eff_train,
        tag_classifier=efficiency,
        seed=seed,
        progress=progress,
    )
    seconds["fit"] = time.perf_counter() - t0
    seconds["apply"] = 0.0
    floors: dict[str, JetEvaluation] = {}

    def compare(events: ak.Array, offset: int, name: str) -> JetEvaluation:
        reference = detector.passes(events, oversample, seed + offset)
        truth_only = ak.zip(
            {layout.truth: reference[layout.truth], layout.pileup: reference[layout.pileup]}, depth_limit=1
        )
        t1 = time.perf_counter()
        generated = model.apply(truth_only, seed=seed + offset + 50)
        seconds["apply"] += time.perf_counter() - t1
        evaluation = evaluate_jets(reference, generated, layout=layout, seed=seed)
        if floor:
            twin = detector.passes(events, oversample, seed + offset + 500)
            floors[name] = evaluate_jets(reference, twin, layout=layout, seed=seed)
        if evaluation.tags:
            jets = _tagged_jets(reference, layout)
            x = np.column_stack([jets["pt"], jets["eta"], jets["mu"], jets["flavour"]])
            evaluation.tag_draws = tag_chi2_of_draws(
                jets, model.tag_models["btag"].probability(x), efficiency_draws, seed + offset + 40
            )
            if floor:
                epsilon = detector.detector_model.btag_probability(jets["flavour"].astype(np.int64), jets["eta"])
                floors[name].tag_draws = tag_chi2_of_draws(jets, epsilon, efficiency_draws, seed + offset + 45)
        evaluation.reliability = score_decision_draws(
            evaluation,
            floors.get(name),
            reference,
            layout,
            model,
            detector.efficiency,
            efficiency_draws,
            seed + offset,
            bins=JET_BINS,
        )
        return evaluation

    evaluation = compare(test_truth, 1000, "test")
    generalisation = {
        name: compare(events, 2000 + 100 * i, name) for i, (name, events) in enumerate((other_processes or {}).items())
    }
    return JetStudyResult(
        model=model,
        evaluation=evaluation,
        generalisation=generalisation,
        floor=floors,
        seconds=seconds,
        sizes={
            "truth_events": len(truth),
            "train_events": len(train_truth),
            "test_events": len(test_truth),
            "train_passes": train_passes,
            "efficiency_passes": efficiency_passes,
            "oversample": oversample,
            "training_jets": int(ak.sum(ak.num(train[layout.truth]))),
        },
        detector=detector.to_dict(),
    )


def load_or_generate_truth_jets(
    path: str | Path,
    n_events: int,
    *,
    seed: int,
    process: Literal["ttbar", "signal"] = "ttbar",
    n_workers: int = 1,
    progress: bool | None = None,
) -> tuple[ak.Array, dict[str, Any]]:
    """Truth jets of ``process`` (:func:`~mcsurrogate.generators.higgs_benchmark.iterate_truth_jets`: Pythia 8,
    FastJet anti-k_t 0.4, p_T > 20 GeV, with flavour and μ), cached as Parquet at ``path`` (a file written by this
    function with the same arguments is read back; its name should say them). Returns ``(events, info)``."""
    from ..generators.higgs_benchmark import iterate_truth_jets

    path = Path(path)
    n_events = check_int(n_events, "n_events", minimum=1)
    if path.is_file():
        events = ak.from_parquet(path)
        if len(events) >= n_events:
            return events[:n_events], {"cached": str(path), "n_events": n_events}
    t0 = time.perf_counter()
    chunks = list(iterate_truth_jets(process, n_events, seed=seed, n_workers=n_workers, progress=progress))
    events = ak.concatenate(chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{time.time_ns()}.tmp.parquet")
    ak.to_parquet(events, tmp)
    tmp.replace(path)
    return events, {"generated": str(path), "seconds": time.perf_counter() - t0, "n_events": len(events)}


def write_jet_report(result: JetStudyResult, out: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``report.json`` (strict JSON), one figure per sample and ``README.md`` into ``out``; ``meta`` holds the
    command, seeds, versions, machine, wall time and the truth samples' provenance."""
    from .object_plots import plot_jet_evaluation

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"meta": dict(meta), "bar_chi2_per_bin": CHI2_BAR} | result.to_dict()
    plot_jet_evaluation(result.evaluation, out / "jets_test.png", "jets: held-out t t̄ truth")
    for name, ev in result.generalisation.items():
        plot_jet_evaluation(ev, out / f"jets_{name}.png", f"jets: {name} truth (not trained on)")
    (out / "report.json").write_text(json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")
    (out / "README.md").write_text(_readme(report))
    return report


def _readme(report: Mapping[str, Any]) -> str:
    meta = report["meta"]
    keys = [
        ("efficiency_chi2_per_bin", "eff. χ²/bin"),
        ("multiplicity_chi2_per_bin", "mult. χ²/bin"),
        ("width_chi2_per_bin", "p_T width χ²/bin"),
        ("m_jj_chi2_per_bin", "m_jj χ²/bin"),
        ("h_t_chi2_per_bin", "H_T χ²/bin"),
        ("btag_chi2_per_bin", "b-tag χ²/bin"),
    ]

    def row(sample: str, h: Mapping[str, Any]) -> str:
        cells = [f"{h[k]:.2f}" if isinstance(h.get(k), float) else "–" for k, _ in keys]
        lo, hi = h["width_precise_ratio_range"]
        precise = f"{h['width_precise_bins']}: {lo:.3f}–{hi:.3f}" if h["width_precise_bins"] else "–"
        met = [k for k, v in h["met"].items() if v]
        missed = [k for k, v in h["met"].items() if not v]
        verdict = ", ".join(met) + (f"; not: {', '.join(missed)}" if missed else "")
        return f"| {sample} | " + " | ".join(cells) + f" | {precise} | {verdict} |"

    lines = [
        "# Object-level response for jets (issue 31): results",
        "",
        "Produced by `analyses/object_response/jets.py`; `report.json` holds every number, the PNGs the figures.",
        "",
        f"- command: `{meta.get('command')}`",
        f"- seeds: {meta.get('seeds')}",
        f"- versions: {meta.get('versions')}",
        f"- machine: {meta.get('machine')}",
        f"- wall time: {meta.get('wall_seconds', float('nan')) / 60:.1f} min",
        f"- truth samples: {meta.get('samples')}",
        "",
        (
            "Bars: χ²/bin ≤ 1.3 for each (the efficiency and the multiplicity on the mean over 8 draws of the surrogate's "
            "reconstruction decisions, the b-tag rates per flavour on the mean over 8 draws of its tag decisions on the "
            "reference's matched jets). A *floor* row is the reference detector against as many passes more of its own "
            "over the same truth: what a perfect surrogate scores (both sides share the truth, so histogram χ² floors sit "
            "below 1)."
        ),
        "",
        "| sample | " + " | ".join(label for _, label in keys) + " | precise bins: ratio range | met |",
        "|---|" + "---|" * (len(keys) + 2),
    ]
    samples = {"test": report["test"]} | dict(report["generalisation"])
    for name, ev in samples.items():
        lines.append(row(name, ev["headline"]))
        if name in report["floor"]:
            lines.append(row(f"{name} floor", report["floor"][name]))
    lines += ["", f"Sizes: {report['sizes']}; seconds: { {k: round(v, 1) for k, v in report['seconds'].items()} }", ""]
    return "\n".join(lines)
