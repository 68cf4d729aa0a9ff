"""Paper B §5 with an amplified background: a signal classifier, a selection on its score, a binned fit in m_bb after
the selection, and its pyhf scans versus luminosity, generated-template size and systematic, beside the spurious
signal that finite held-out MC alone explains.

:func:`classifier_cut_analysis` takes feature matrices (events × :data:`~mcsurrogate.amplification.CONTINUOUS_FEATURES`,
GeV and radians) and returns a :class:`CutAnalysis`: the classifier, its cross-check on held-out MC, the post-cut
m_bb of every sample, the scan rows and two sets of toys (a perfect generator of as many events; one that
reproduces its training MC exactly).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..amplification import CONTINUOUS_FEATURES
from ..errors import InputError
from ..stats import (
    ClassifierCut,
    Sample,
    ScanPoint,
    SpuriousSignalToy,
    cut_crosscheck,
    scan,
    spurious_signal_toys,
    train_signal_classifier,
)
from .bars import TOY_SYSTEMATIC

__all__ = [
    "FIT_BINS",
    "FIT_RANGE",
    "FIT_VARIABLE",
    "MIN_SELECTED_GENERATED",
    "SYSTEMATICS",
    "CutAnalysis",
    "classifier_cut_analysis",
    "fit_edges",
]

log = logging.getLogger(__name__)

#: the fitted observable after the cut, its bins and range (GeV)
FIT_VARIABLE = "m_bb"
FIT_BINS = 25
FIT_RANGE = (0.0, 500.0)
#: relative background normalisation systematics of the scan
SYSTEMATICS = (0.05, 0.10, 0.20)
#: fewest generated events after the cut that the scan's templates are built from
MIN_SELECTED_GENERATED = 2_000


def fit_edges() -> np.ndarray:
    """The bin edges of the post-cut m_bb fit (GeV)."""
    return np.linspace(*FIT_RANGE, FIT_BINS + 1)


@dataclass
class CutAnalysis:
    """Everything the classifier-cut analysis measured.

    ``cut``: the classifier and threshold; ``classifier_background_events``: background events it was trained on;
    ``crosscheck``: :func:`~mcsurrogate.stats.cut_crosscheck` of the generated pool against held-out MC;
    ``m_signal``, ``m_mc``, ``m_generated`` (with ``weights_generated``): post-cut m_bb (GeV) of the signal
    template, the held-out MC and the generated pool; ``n_signal_selected`` and ``n_training_selected``: signal
    template and training-MC events passing the cut; ``luminosities`` (scan units: MC background yield / held-out
    events after the cut) and ``n_generated`` (template sizes) of the scan, its ``scan_rows``, and the toys of a
    perfect generator (``toys``) and of a memorising learner (``learner_toys``), rows of
    :func:`~mcsurrogate.stats.spurious_signal_toys`."""

    cut: ClassifierCut
    classifier_background_events: int
    crosscheck: dict[str, Any]
    m_signal: np.ndarray
    m_mc: np.ndarray
    m_generated: np.ndarray
    weights_generated: np.ndarray | None
    n_signal_selected: int
    n_training_selected: int
    luminosities: np.ndarray
    n_generated: np.ndarray
    scan_rows: list[ScanPoint]
    toys: list[SpuriousSignalToy]
    learner_toys: list[SpuriousSignalToy]

    @property
    def failed_points(self) -> list[ScanPoint]:
        """Scan rows whose fit failed."""
        return [r for r in self.scan_rows if r.status != "ok"]

    def signal_counts(self) -> np.ndarray:
        """Post-cut m_bb of the signal template, events per fit bin."""
        return np.histogram(self.m_signal, fit_edges())[0]


def classifier_cut_analysis(
    x_generated: np.ndarray,
    x_holdout: np.ndarray,
    x_training: np.ndarray,
    x_signal_classifier: np.ndarray,
    x_signal_template: np.ndarray,
    *,
    weights_generated: np.ndarray | None = None,
    classifier_background: Literal["generated", "mc"] = "generated",
    threshold: float = 0.55,
    scan_points: int = 10,
    n_toys: int = 20,
    features: Sequence[str] = CONTINUOUS_FEATURES,
    seed: int = 0,
    processes: int = 2,
) -> CutAnalysis:
    """The classifier-cut analysis of a generated background ``x_generated`` (weighted by ``weights_generated``,
    or not).

    The signal classifier is trained on ``x_signal_classifier`` against the first
    min(half the generated events, 4 × the signal events) generated events (``classifier_background="generated"``,
    paper B) or against the training MC ``x_training`` (``"mc"``: the cut is then not tuned to where the generator
    under-populates), with selection at score > ``threshold``. The rest of the generated events (disjoint from the
    classifier's) make the background templates; ``x_holdout`` (MC no model saw) is the reference and the
    cross-check; ``x_signal_template`` the signal template. The scan runs ``scan_points`` luminosities (MC
    background yield 10⁴ → 10⁶ events after the cut, as in paper B) and as many template sizes (10³ → all
    selected generated events) at :data:`SYSTEMATICS`; the toys (``n_toys`` each, 10 % systematic, with limits) at
    those luminosities with the largest template. Raises :class:`~mcsurrogate.errors.InputError` when fewer than
    :data:`MIN_SELECTED_GENERATED` generated events pass the cut."""
    features = list(features)
    if FIT_VARIABLE not in features:
        raise InputError(f"the classifier-cut analysis fits {FIT_VARIABLE}, which is not among the features {features}")
    if classifier_background not in ("generated", "mc"):
        raise InputError(f"classifier_background must be 'generated' or 'mc', got {classifier_background!r}")
    if scan_points < 1 or n_toys < 1:
        raise InputError(f"scan_points and n_toys must be at least 1, got {scan_points} and {n_toys}")
    n_clf = min(len(x_generated) // 2, 4 * len(x_signal_classifier))
    if classifier_background == "generated":
        x_clf_bkg, w_clf_bkg = x_generated[:n_clf], None if weights_generated is None else weights_generated[:n_clf]
    else:
        x_clf_bkg, w_clf_bkg = x_training, None
    cut = train_signal_classifier(
        x_signal_classifier, x_clf_bkg, background_weights=w_clf_bkg, threshold=threshold, seed=seed
    )
    col = features.index(FIT_VARIABLE)
    pool = x_generated[n_clf:]
    w_pool = None if weights_generated is None else weights_generated[n_clf:]
    crosscheck = cut_crosscheck(
        cut,
        pool,
        x_holdout,
        fit_generated=pool[:, col],
        fit_mc=x_holdout[:, col],
        edges=fit_edges(),
        weights_generated=w_pool,
    )
    sel_sig, sel_mc, sel_gen = cut.select(x_signal_template), cut.select(x_holdout), cut.select(pool)
    m_sig, m_mc, m_gen = x_signal_template[sel_sig, col], x_holdout[sel_mc, col], pool[sel_gen, col]
    w_gen = None if w_pool is None else w_pool[sel_gen]
    lumis = np.geomspace(1e4, 1e6, scan_points) / len(m_mc)
    if len(m_gen) < MIN_SELECTED_GENERATED:
        raise InputError(
            f"only {len(m_gen)} generated events pass the classifier cut; the scan needs at least "
            f"{MIN_SELECTED_GENERATED:,} (raise the amplification or the sample sizes)"
        )
    n_gens = np.unique(np.geomspace(1_000, len(m_gen), scan_points).astype(int))
    scan_rows = scan(
        Sample(m_sig),
        Sample(m_mc),
        Sample(m_gen, w_gen),
        bins=FIT_BINS,
        range=FIT_RANGE,
        luminosities=lumis,
        n_generated=n_gens,
        systematics=SYSTEMATICS,
        empty_bins="floor",
        on_error="record",
        seed=seed,
        processes=processes,
    )
    failed = [r for r in scan_rows if r.status != "ok"]
    if failed:
        log.warning("%d of %d scan points failed to fit, e.g. %s", len(failed), len(scan_rows), failed[0].reason)
    # what finite held-out MC alone explains: the spurious signal of a perfect generator of as many events, and of
    # one that reproduces its training MC exactly: the training sample's fluctuations, as many events as pass the
    # cut there, come with every template it generates
    toy_settings: dict[str, Any] = {
        "bins": FIT_BINS,
        "range": FIT_RANGE,
        "luminosities": lumis,
        "systematic": TOY_SYSTEMATIC,
        "n_toys": n_toys,
        "limits": True,
        "seed": seed,
        "processes": processes,
    }
    toys = spurious_signal_toys(Sample(m_sig), Sample(m_mc), max(n_gens), **toy_settings)
    n_train_cut = int(cut.select(x_training).sum())
    learner_toys = spurious_signal_toys(
        Sample(m_sig), Sample(m_mc), max(n_gens), n_training=n_train_cut, **toy_settings
    )
    return CutAnalysis(
        cut=cut,
        classifier_background_events=len(x_clf_bkg),
        crosscheck=crosscheck,
        m_signal=m_sig,
        m_mc=m_mc,
        m_generated=m_gen,
        weights_generated=w_gen,
        n_signal_selected=int(sel_sig.sum()),
        n_training_selected=n_train_cut,
        luminosities=lumis,
        n_generated=n_gens,
        scan_rows=scan_rows,
        toys=toys,
        learner_toys=learner_toys,
    )
