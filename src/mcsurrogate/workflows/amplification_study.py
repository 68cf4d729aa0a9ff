"""Paper B end to end on the HIGGS-like benchmark, as library calls: samples, splits, model comparison,
amplification, validation, the classifier-cut analysis with its pyhf scans, effective statistics and the quality
bars. ``analyses/higgs_amplification/run.py`` is its command line.

1. **Samples** (:func:`study_background`, :func:`study_signal`): t t̄ background and the heavy-Higgs signal from
   Pythia 8 + FastJet + the parametric detector, from the sample cache (:mod:`.sample_cache`).
2. **Splits** (:mod:`.splits`): background 50 % held out, 10 % model selection, 40 % training; signal halves for
   the classifier and the template.
3. **Model comparison** on the 18 continuous features (:data:`~mcsurrogate.amplification.CONTINUOUS_FEATURES`):
   :meth:`StudyConfig.candidates` scored on the selection split, the best by C2ST AUC is the amplifier
   (:mod:`.model_choice`); or a model an earlier study trained (:attr:`StudyConfig.model`).
4. **Amplification**: the amplifier generates :attr:`StudyConfig.amplification` × the training MC; validation
   against the held-out MC. With :attr:`StudyConfig.reweight` every generated event carries the weight
   w(x) = p_MC/p_gen of a classifier trained on the training MC against twice as many other generated events
   (:func:`fit_generated_reweighting`, ELSA's first step), and every later step uses the weights.
5. **Classifier-cut analysis** (:mod:`.cut_analysis`): fit in m_bb after the cut, pyhf scans, toys.
6. **Effective statistics** of the post-cut m_bb templates, and the quality bars (:mod:`.bars`).

:func:`run_study` does all of it and writes ``report.json`` (every number plotted), ``report.md``
(:func:`~mcsurrogate.workflows.report.amplification_markdown`), the PNG figures, the best model, the validation
folder and the scan tables into one folder.

Seeds, from the study's ``seed``: background sample ``seed``, signal sample ``seed + 1``, signal split
``seed + 2``, background split, trainings, validation, classifier and scans ``seed``, the amplified sample
``seed + 10``, the reweighting's fit sample ``seed + 20``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import awkward as ak
import numpy as np

from ..amplification import (
    CONTINUOUS_FEATURES,
    DISCRETE_FEATURES,
    PAPER_B_FAMILIES,
    Candidate,
    compare_models,
    feature_matrix,
    generate,
    paper_b_candidates,
)
from ..errors import InputError
from ..files import atomic_write_text
from ..refinement import Reweighting, fit_reweighting
from ..surrogate import Surrogate
from ..validation.samples import kish_size
from .bars import TOY_SYSTEMATIC, quality_bars
from .cut_analysis import FIT_BINS, FIT_RANGE, FIT_VARIABLE, CutAnalysis, classifier_cut_analysis, fit_edges
from .model_choice import ModelChoice, choose_best, reuse_model
from .report import amplification_markdown
from .sample_cache import SampleInfo, cached_sample
from .splits import BackgroundSplits, SignalSplits, split_background, split_signal

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FULL",
    "SMALL",
    "StudyConfig",
    "fit_generated_reweighting",
    "run_study",
    "samples_only",
    "study_background",
    "study_signal",
    "weighting_summary",
]

log = logging.getLogger(__name__)

#: features of the validation's corner plot
CORNER_FEATURES = ("m_jj", "m_jjj", "m_bb", "m_wbb", "m_wwbb")


@dataclass(frozen=True)
class StudyConfig:
    """Every setting of a paper-B study. The defaults are the full study (:data:`FULL`: hours on 2 cores once the
    samples are cached); :data:`SMALL` is a quick one.

    Samples: ``n_background`` t t̄ and ``n_signal`` signal events from the cache folder ``cache`` (generated there
    by ``workers`` Pythia processes when missing). Candidates: every flow family of ``families`` with every
    preprocessing of ``preprocessings`` at ``blocks`` × ``hidden``, conditioned on the b-tags with
    ``condition_on_btags``, learning the :data:`~mcsurrogate.amplification.DIFFERENCES` sets ``differences``;
    trained ≤ ``epochs`` epochs with ``patience``, ``batch_size`` and an EMA of the weights with ``ema_decay``.
    ``model``: a model directory of an earlier study to re-use instead of the comparison. ``amplification``:
    generated / training MC events; ``reweight``: weight them (ELSA). ``permutations``: label permutations of the
    C2ST p-values. ``threshold`` and ``classifier_background``: the signal classifier's cut and background
    (``"generated"``: paper B; ``"mc"``: the training MC). ``scan_points`` luminosities and template sizes, and
    ``toys`` toys per floor. ``mode`` names the configuration in the report (``"full"``, ``"small"``,
    ``"custom"``)."""

    n_background: int = 1_000_000
    n_signal: int = 200_000
    families: tuple[str, ...] = PAPER_B_FAMILIES
    preprocessings: tuple[str, ...] = ("logit", "gauss-rank")
    blocks: int = 10
    hidden: int = 128
    epochs: int = 100
    patience: int = 15
    batch_size: int = 1024
    ema_decay: float | None = None
    condition_on_btags: bool = False
    differences: tuple[str, ...] = ()
    model: Path | None = None
    amplification: float = 10.0
    reweight: bool = False
    permutations: int = 200
    threshold: float = 0.55
    classifier_background: Literal["generated", "mc"] = "generated"
    scan_points: int = 10
    toys: int = 20
    seed: int = 1
    cache: Path = Path("cache/higgs_benchmark")
    workers: int = 2
    mode: str = "full"

    def __post_init__(self) -> None:
        for name in ("n_background", "n_signal", "blocks", "hidden", "epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("permutations", "scan_points", "toys", "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.amplification > 0:
            raise InputError(f"amplification (generated / training events) must be positive, got {self.amplification}")
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold is a probability in (0, 1), got {self.threshold}")
        if self.classifier_background not in ("generated", "mc"):
            raise InputError(f"classifier_background must be 'generated' or 'mc', got {self.classifier_background!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise InputError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not self.families or not self.preprocessings:
            raise InputError("families and preprocessings need at least one entry each")

    def training(self) -> dict[str, Any]:
        """The :class:`~mcsurrogate.training.TrainConfig` settings every candidate is trained with."""
        training: dict[str, Any] = {
            "epochs": self.epochs,
            "patience": self.patience,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
        if self.ema_decay is not None:
            training["ema_decay"] = self.ema_decay
        return training

    def candidates(self) -> list[Candidate]:
        """The models of the comparison (:func:`~mcsurrogate.amplification.paper_b_candidates`)."""
        return paper_b_candidates(
            families=self.families,
            preprocessings=self.preprocessings,
            blocks=self.blocks,
            hidden=self.hidden,
            conditions=DISCRETE_FEATURES if self.condition_on_btags else (),
            differences=self.differences,
        )


#: the full study: 10⁶ t t̄ and 2 × 10⁵ signal events, 10 × 128 flows, ≤ 100 epochs, 10 scan points, 20 toys
FULL = StudyConfig()
#: a quick study (~15 min on 2 cores once the samples are cached): small samples and flows, 4 scan points, 5 toys
SMALL = StudyConfig(
    n_background=12_000,
    n_signal=4_000,
    blocks=4,
    hidden=64,
    epochs=20,
    patience=5,
    batch_size=256,
    scan_points=4,  # luminosities and N_gen values: 4 × (1 + 4) × 3 fits of ~5 s each on small templates
    toys=5,
    mode="small",
)


def study_background(
    cache: str | os.PathLike[str], n: int, seed: int, workers: int = 2
) -> tuple[BackgroundSplits, SampleInfo]:
    """The study's background: the first ``n`` t t̄ events of the cache's run with generator seed ``seed``, split
    with the same ``seed`` (what a study of this seed trained, selected and validated on)."""
    events, info = cached_sample("ttbar", n, seed, Path(cache), workers)
    return split_background(events, seed), info


def study_signal(cache: str | os.PathLike[str], n: int, seed: int, workers: int = 2) -> tuple[SignalSplits, SampleInfo]:
    """The study's signal: the first ``n`` signal events of the cache's run with generator seed ``seed + 1``, split
    in halves with seed ``seed + 2`` (``seed``: the study's seed)."""
    events, info = cached_sample("signal", n, seed + 1, Path(cache), workers)
    return split_signal(events, seed + 2), info


def fit_generated_reweighting(
    model: Surrogate, train: ak.Array, features: list[str], seed: int, **fit_options: Any
) -> Reweighting:
    """The classifier weights w(x) = p_MC/p_gen of ``model``'s events (ELSA's first step,
    :func:`~mcsurrogate.refinement.fit_reweighting`, with its ``fit_options``: folds, max_iter, clip, ...): learned
    from the training MC ``train`` against 2 × as many generated events (seed ``seed + 20``, so none of the
    amplified sample's)."""
    fit_sample = generate(model, 2 * len(train), source=train, seed=seed + 20)
    return fit_reweighting(train, fit_sample, features, seed=seed, **fit_options)


def weighting_summary(reweighting: Reweighting, weights: np.ndarray) -> dict[str, Any]:
    """The reweighting's description with the Kish efficiency (Σw)²/(n Σw²) of the ``weights`` it gave the
    amplified sample and their 1 %, 50 % and 99 % quantiles."""
    return {
        **reweighting.to_dict(),
        "kish_efficiency_amplified": kish_size(weights, len(weights)) / len(weights),
        "weight_quantiles": dict(
            zip(("1%", "50%", "99%"), np.quantile(weights, [0.01, 0.5, 0.99]).tolist(), strict=True)
        ),
    }


def _choose_model(config: StudyConfig, parts: BackgroundSplits, features: list[str], out: Path) -> ModelChoice:
    """Step 3: the comparison (its rows written to ``comparison.json`` as soon as they exist, the best model to
    ``best_model``), or the model of :attr:`StudyConfig.model`."""
    if config.model is not None:
        choice = reuse_model(config.model, len(parts.train))
        if choice.comparison:
            atomic_write_text(out / "comparison.json", json.dumps(choice.comparison, indent=1))
        return choice
    candidates = config.candidates()
    rows, models = compare_models(
        parts.train,
        parts.select,
        candidates,
        features=features,
        training=config.training(),
        n_permutations=config.permutations,
        seed=config.seed,
        checkpoint_dir=out / "checkpoints",
    )
    atomic_write_text(out / "comparison.json", json.dumps([r.to_dict() for r in rows], indent=1))  # kept on failure
    choice = choose_best(rows, models, config.training() | {"blocks": config.blocks, "hidden": config.hidden})
    own = next(c for c in candidates if c.name == choice.name)
    choice.training = own.training_config(choice.training)  # the recipe it trained with (flow matching: its own)
    choice.model.save(out / "best_model", overwrite=True)
    return choice


def _figures(choice: ModelChoice, analysis: CutAnalysis, features: list[str]) -> dict[str, Figure]:
    """The study's own figures (the scan's are written by :func:`~mcsurrogate.stats.save_scan_plots`)."""
    from ..stats import plot_post_cut_shapes, plot_spurious_signal_floor
    from .figures import plot_comparison, plot_training, plot_w1_matrix

    figures = {"training.png": plot_training(choice.histories)}
    if choice.comparison:
        figures["comparison.png"] = plot_comparison(choice.comparison)
        figures["comparison_w1.png"] = plot_w1_matrix(choice.comparison, features)
    figures["spurious_signal_floor.png"] = plot_spurious_signal_floor(
        analysis.scan_rows, analysis.toys, TOY_SYSTEMATIC, learner_toys=analysis.learner_toys
    )
    figures["limit_shift_floor.png"] = plot_spurious_signal_floor(
        analysis.scan_rows, analysis.toys, TOY_SYSTEMATIC, quantity="ul_shift", learner_toys=analysis.learner_toys
    )
    figures["post_cut_shapes.png"] = plot_post_cut_shapes(
        analysis.crosscheck, signal_counts=analysis.signal_counts(), variable="$m_{bb}$ [GeV]"
    )
    return figures


def run_study(config: StudyConfig, out: str | os.PathLike[str], *, command: str = "") -> dict[str, Any]:
    """Run the whole study with ``config`` into the folder ``out`` (created; a study started again in the same
    folder resumes its candidates' trainings from their checkpoints) and return ``report.json``'s content.
    ``command``: how the study was started, for the report."""
    from ..stats import rows_to_csv, save_scan_plots
    from ..stats.jsonable import dumps
    from ..validation import effective_statistics, validate, write_report
    from ..validation.plots import plot_effective_statistics

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    features = list(CONTINUOUS_FEATURES)

    # 1-2. samples and splits
    t0 = time.perf_counter()
    parts, bkg_info = study_background(config.cache, config.n_background, config.seed, config.workers)
    signal, sig_info = study_signal(config.cache, config.n_signal, config.seed, config.workers)
    timings["samples_s"] = time.perf_counter() - t0
    log.info("background: %s", parts.sizes())

    # 3. model comparison, or a model trained before on the same training split
    t0 = time.perf_counter()
    choice = _choose_model(config, parts, features, out)
    timings["comparison_s"] = time.perf_counter() - t0

    # 4. amplification and validation against the held-out MC
    t0 = time.perf_counter()
    n_train = len(parts.train)
    n_gen = round(config.amplification * n_train)
    generated = generate(choice.model, n_gen, source=parts.train, seed=config.seed + 10)
    timings["generation_s"] = time.perf_counter() - t0
    x_hold = feature_matrix(parts.holdout, features)
    x_gen = feature_matrix(generated, features)
    weights, reweighting = None, None
    if config.reweight:
        t0 = time.perf_counter()
        rw = fit_generated_reweighting(choice.model, parts.train, features, config.seed)
        weights = rw.weights(x_gen)
        reweighting = weighting_summary(rw, weights)
        timings["reweighting_s"] = time.perf_counter() - t0
        log.info("reweighting: Kish efficiency %.3f", reweighting["kish_efficiency_amplified"])
    t0 = time.perf_counter()
    n_val = min(len(x_hold), len(x_gen))
    report = validate(
        x_hold[:n_val],
        x_gen[:n_val],
        features,
        weights_candidate=None if weights is None else weights[:n_val],
        n_permutations=config.permutations,
        seed=config.seed,
    )
    write_report(report, x_hold[:n_val], x_gen[:n_val], out / "validation", corner_features=list(CORNER_FEATURES))
    timings["validation_s"] = time.perf_counter() - t0
    log.info("validation: %s", report.verdict())

    # 5. classifier-cut analysis, scans and toys
    t0 = time.perf_counter()
    x_train = feature_matrix(parts.train, features)
    analysis = classifier_cut_analysis(
        x_gen,
        x_hold,
        x_train,
        feature_matrix(signal.classifier, features),
        feature_matrix(signal.template, features),
        weights_generated=weights,
        classifier_background=config.classifier_background,
        threshold=config.threshold,
        scan_points=config.scan_points,
        n_toys=config.toys,
        features=features,
        seed=config.seed,
    )
    (out / "scan").mkdir(exist_ok=True)
    atomic_write_text(out / "scan" / "scan.json", dumps([r.to_dict() for r in analysis.scan_rows], indent=1))
    atomic_write_text(out / "scan" / "scan.csv", rows_to_csv(analysis.scan_rows))
    scan_figures = save_scan_plots(analysis.scan_rows, out / "scan")
    atomic_write_text(out / "scan" / "spurious_signal_toys.json", dumps([t.to_dict() for t in analysis.toys], indent=1))
    atomic_write_text(
        out / "scan" / "memorising_learner_toys.json", dumps([t.to_dict() for t in analysis.learner_toys], indent=1)
    )
    figures = _figures(choice, analysis, features)
    timings["analysis_s"] = time.perf_counter() - t0

    # 6. effective statistics of the post-cut m_bb templates, and the bars
    m_gen = analysis.m_generated
    sizes = np.unique(np.geomspace(100, len(m_gen), 8).astype(int))
    eff = effective_statistics(
        analysis.m_mc, m_gen, fit_edges(), sizes, weights_generated=analysis.weights_generated, seed=config.seed
    )
    figures["effective_statistics.png"] = plot_effective_statistics(eff, variable="$m_{bb}$ after the cut")
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    bars = quality_bars(report, analysis.scan_rows, n_val, analysis.toys, analysis.learner_toys)
    timings["total_s"] = time.perf_counter() - t_start
    result = {
        "mode": config.mode,
        "command": command,
        "samples": {
            "background": bkg_info.to_dict(),
            "signal": sig_info.to_dict(),
            "splits": parts.sizes(),
            "signal_classifier_train": len(signal.classifier),
            "signal_template": len(signal.template),
        },
        "features": features,
        "training": choice.training,
        "conditions": list(choice.model.conditions),
        "flow_features": list(choice.model.targets),
        "comparison": choice.comparison,
        "best_model": choice.name,
        "amplification": {
            "factor": config.amplification,
            "n_train": n_train,
            "n_generated": n_gen,
            "sample_events_per_second": n_gen / max(timings["generation_s"], 1e-9),
        },
        "reweighting": reweighting,
        "validation": report.to_dict(),
        "classifier_cut": _cut_summary(analysis, config.classifier_background),
        "scan": {
            "luminosities": analysis.luminosities.tolist(),
            "n_generated": analysis.n_generated.tolist(),
            "figures": scan_figures,
            "rows": "scan/scan.json",
            "failed_points": len(analysis.failed_points),
            "spurious_signal_toys": "scan/spurious_signal_toys.json",
            "memorising_learner_toys": "scan/memorising_learner_toys.json",
        },
        "effective_statistics": eff.to_dict(),
        "quality_bars": bars.to_dict(),
        "timings": timings,
    }
    atomic_write_text(out / "report.json", json.dumps(result, indent=1, default=float))
    atomic_write_text(out / "report.md", amplification_markdown(result))
    log.info("done in %.1f min; report in %s", timings["total_s"] / 60, out / "report.md")
    return result


def _cut_summary(analysis: CutAnalysis, classifier_background: str) -> dict[str, Any]:
    """The ``classifier_cut`` section of the report."""
    return {
        "threshold": analysis.cut.threshold,
        "classifier_background": classifier_background,
        "classifier_background_events": analysis.classifier_background_events,
        "crosscheck": analysis.crosscheck,
        "signal_template_counts": analysis.signal_counts().tolist(),  # post-cut m_bb of the signal template, per bin
        "selected": {
            "signal_template": analysis.n_signal_selected,
            "mc_holdout": len(analysis.m_mc),
            "generated": len(analysis.m_generated),
            "mc_training": analysis.n_training_selected,
        },
        "fit_variable": FIT_VARIABLE,
        "bins": FIT_BINS,
        "range": list(FIT_RANGE),
    }


def samples_only(config: StudyConfig) -> tuple[SampleInfo, SampleInfo]:
    """Generate (or continue) the study's cached samples without running the study; returns their descriptions."""
    _, bkg_info = study_background(config.cache, config.n_background, config.seed, config.workers)
    _, sig_info = study_signal(config.cache, config.n_signal, config.seed, config.workers)
    return bkg_info, sig_info
