"""pyhf HistFactory statistics for generated templates: templates from hist, workspaces, fast asymptotic
inference (μ̂ ± σ, Z₀, CLs limits with bands), scans versus luminosity, N_gen and systematic, and paper B's
classifier-cut analysis; the surrogate's own uncertainty (ensemble spread, spurious signal) as modifiers, coverage by
toys, multi-channel workspaces and fit diagnostics. Imports no torch and no matplotlib (figures import it when drawn)."""

from __future__ import annotations

from .analysis import BackgroundSample, Channel, analysis_workspace
from .classifier_cut import ClassifierCut, cut_crosscheck, train_signal_classifier
from .coverage import COVERAGE_LEVELS, CoverageLimit, CoverageResult, CoverageToy, TemplateCoverage, coverage_study
from .diagnostics import FitDiagnostics, NuisanceImpact, NuisancePull, fit_diagnostics
from .inference import (
    BANDS,
    FIT_LADDER,
    TEST_STATISTICS,
    DiscoveryResult,
    FitResult,
    Inference,
    MuFit,
    TestStatistic,
    UpperLimit,
)
from .plots import (
    plot_coverage,
    plot_post_cut_shapes,
    plot_prefit_postfit,
    plot_pulls,
    plot_ranking,
    plot_spurious_signal_floor,
    save_scan_plots,
)
from .scan import (
    PointResult,
    Sample,
    ScanPoint,
    SpuriousSignalToy,
    evaluate_point,
    rows_to_csv,
    scan,
    scan_summary,
    spurious_signal_toys,
)
from .surrogate_uncertainty import (
    SURROGATE_UNCERTAINTY_KINDS,
    SpuriousSignal,
    SurrogateUncertainty,
    TemplateSpread,
    measure_spurious_signal,
)
from .templates import check_binning, fill_template, floor_empty_bins, scale_template, template_arrays
from .workspace import asimov_counts, build_workspace, model_and_data

__all__ = [
    "BANDS",
    "COVERAGE_LEVELS",
    "FIT_LADDER",
    "SURROGATE_UNCERTAINTY_KINDS",
    "TEST_STATISTICS",
    "BackgroundSample",
    "Channel",
    "ClassifierCut",
    "CoverageLimit",
    "CoverageResult",
    "CoverageToy",
    "DiscoveryResult",
    "FitDiagnostics",
    "FitResult",
    "Inference",
    "MuFit",
    "NuisanceImpact",
    "NuisancePull",
    "PointResult",
    "Sample",
    "ScanPoint",
    "SpuriousSignal",
    "SpuriousSignalToy",
    "SurrogateUncertainty",
    "TemplateCoverage",
    "TemplateSpread",
    "TestStatistic",
    "UpperLimit",
    "analysis_workspace",
    "asimov_counts",
    "build_workspace",
    "check_binning",
    "coverage_study",
    "cut_crosscheck",
    "evaluate_point",
    "fill_template",
    "fit_diagnostics",
    "floor_empty_bins",
    "measure_spurious_signal",
    "model_and_data",
    "plot_coverage",
    "plot_post_cut_shapes",
    "plot_prefit_postfit",
    "plot_pulls",
    "plot_ranking",
    "plot_spurious_signal_floor",
    "rows_to_csv",
    "save_scan_plots",
    "scale_template",
    "scan",
    "scan_summary",
    "spurious_signal_toys",
    "template_arrays",
    "train_signal_classifier",
]
