"""Fit templates as hist histograms with weighted storage: filling, normalising, and per-bin statistics.

A template is a ``hist.Hist`` with one axis (the fit variable) and ``Weight`` storage, so that every bin
carries Σw (the expected yield) and Σw² (its variance from the template's own events). Scaling a template
to a luminosity or a yield multiplies Σw by k and Σw² by k²: the *relative* statistical uncertainty of a
bin stays 1/√N_eff of the events that fill it, which is why a template built from more generated events
has a smaller staterror in the fit.

Negative event weights (NLO generators) are allowed; a bin whose total is not positive is an error in a
background template, because a Poisson expectation must be positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import hist
import numpy as np

from ..arguments import check_float, check_int, check_interval, check_numeric_array, describe
from ..errors import InputError

__all__ = [
    "check_binning",
    "check_template",
    "fill_template",
    "floor_empty_bins",
    "gaussian_template",
    "scale_template",
    "template_arrays",
]


def fill_template(
    values: np.ndarray,
    *,
    bins: int | Sequence[float] | np.ndarray | hist.axis.Regular | hist.axis.Variable,
    range: tuple[float, float] | None = None,
    weights: np.ndarray | None = None,
    name: str = "x",
    label: str | None = None,
) -> hist.Hist:
    """Histogram ``values`` (the fit variable, e.g. m_bb in GeV or a classifier score) into a template.

    ``bins`` is a number of regular bins (an integer ≥ 1) over ``range`` = (low, high), a sequence of edges, or a
    hist axis. Values outside the axis fall into flow bins that the fit does not use. Weights default to 1.
    A wrong type or value of any argument raises :class:`~mcsurrogate.errors.InputError` naming it.
    """
    values = check_numeric_array(values, f"template values for {name!r}")
    if values.ndim != 1:
        raise InputError(f"template values for {name!r} must be one-dimensional; got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"template values for {name!r} contain {int((~np.isfinite(values)).sum())} NaN or inf")
    if weights is not None:
        weights = check_numeric_array(weights, f"weights for {name!r}")
        if weights.shape != values.shape:
            raise InputError(f"weights for {name!r} have shape {weights.shape} for {values.size} values")
        if not np.all(np.isfinite(weights)):
            raise InputError(f"weights for {name!r} contain NaN or inf")
    if isinstance(bins, (hist.axis.Regular, hist.axis.Variable)):
        axis = bins
    elif np.ndim(bins) == 0:  # a number of bins (anything else scalar, e.g. "ten", is refused here)
        n = check_int(bins, "bins", minimum=1)
        if range is None:
            raise InputError(f"a number of bins ({n}) needs range=(low, high) for {name!r}")
        low, high = check_interval(range, "range")
        axis = hist.axis.Regular(n, low, high, name=name, label=label or name)
    else:
        edges = check_numeric_array(bins, f"bin edges for {name!r}")
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise InputError(
                f"bin edges for {name!r} must be a strictly increasing sequence of ≥ 2 finite numbers, got {bins!r}"
            )
        axis = hist.axis.Variable(edges, name=name, label=label or name)
    return hist.Hist(axis, storage=hist.storage.Weight()).fill(values, weight=weights)


def gaussian_template(
    bins: int | Sequence[float] | np.ndarray | hist.axis.Regular | hist.axis.Variable,
    *,
    mean: float,
    sigma: float,
    total: float,
    range: tuple[float, float] | None = None,
    name: str = "x",
) -> hist.Hist:
    """An analytic Gaussian signal template (e.g. a resonance of mass ``mean`` and resolution ``sigma``, GeV): each
    bin holds ``total`` × the normal probability of its interval (exact, from ``scipy.stats.norm``), with zero Σw²
    (no template statistics). ``total`` is the yield of the whole Gaussian: the part outside the axis is left out.
    ``bins`` and ``range`` as in :func:`fill_template`; bad values raise :class:`~mcsurrogate.errors.InputError`."""
    from scipy.stats import norm

    mean = check_float(mean, "mean (the signal's peak position)")
    sigma = check_float(sigma, "sigma (the signal's width)", above=0.0)
    total = check_float(total, "total (the signal's yield)", above=0.0)
    h = fill_template(np.empty(0), bins=bins, range=range, name=name)
    view: Any = h.view()
    view.value = total * np.diff(norm.cdf(h.axes[0].edges, loc=mean, scale=sigma))
    view.variance = 0.0
    return h


def check_template(h: Any, name: str) -> hist.Hist:
    """``h`` if it is a one-axis ``hist.Hist`` template, else an :class:`~mcsurrogate.errors.InputError` naming
    ``name`` and saying how to make one (an array of yields has no bin edges to compare and no Σw² for staterror)."""
    if not isinstance(h, hist.Hist):
        shown = f"a numpy array of shape {h.shape}" if isinstance(h, np.ndarray) else describe(h)
        raise InputError(
            f"the {name} template must be a hist.Hist with Weight storage (make one with "
            f"mcsurrogate.stats.fill_template(values, bins=..., range=..., weights=...)), got {shown}: an array of "
            "yields has no bin edges to check against the other templates and no Σw² for the staterror"
        )
    if len(h.axes) != 1:
        raise InputError(f"the {name} template has {len(h.axes)} axes; a template has one (the fit variable)")
    return h


def template_arrays(h: hist.Hist) -> tuple[np.ndarray, np.ndarray]:
    """(Σw, Σw²) per bin of a one-axis weighted template, flow bins excluded."""
    check_template(h, "given")
    variances = h.variances()
    if variances is None:
        raise InputError("templates need hist.storage.Weight() so that each bin knows its Σw²")
    return np.asarray(h.values(), dtype=float), np.asarray(variances, dtype=float)


def scale_template(h: hist.Hist, *, factor: float | None = None, total: float | None = None) -> hist.Hist:
    """A copy of ``h`` scaled by ``factor`` (e.g. a luminosity in fb⁻¹ when weights are per fb⁻¹) or to a
    ``total`` yield in the axis range. Σw scales by k, Σw² by k²."""
    if (factor is None) == (total is None):
        raise InputError("give exactly one of factor= or total=")
    if total is not None:
        total = check_float(total, "total (the positive yield to normalise to)", above=0.0)
        current = float(template_arrays(h)[0].sum())
        if not current > 0:
            raise InputError("cannot normalise a template with no positive yield in its range")
        factor = total / current
    factor = check_float(factor, "factor (a positive luminosity or yield ratio)", above=0.0)
    out = h.copy()
    view: Any = out.view()
    view.value = view.value * factor
    view.variance = view.variance * factor**2
    return out


def check_binning(templates: dict[str, hist.Hist]) -> None:
    """Raise if the templates do not share one axis (same edges); the message names the pair."""
    items = [(name, check_template(h, name)) for name, h in templates.items()]
    ref_name, ref = items[0]
    ref_edges = ref.axes[0].edges
    for name, h in items[1:]:
        edges = h.axes[0].edges
        if edges.shape != ref_edges.shape or not np.allclose(edges, ref_edges, rtol=1e-12, atol=0):
            raise InputError(
                f"template {name!r} has a binning ({edges.size - 1} bins over [{edges[0]:g}, {edges[-1]:g}]) "
                f"different from {ref_name!r} ({ref_edges.size - 1} bins over [{ref_edges[0]:g}, {ref_edges[-1]:g}]); "
                "fill every template on the same axis"
            )


def floor_empty_bins(
    h: hist.Hist, *, name: str, policy: Literal["error", "floor"] = "error"
) -> tuple[np.ndarray, np.ndarray]:
    """(Σw, Σw²) of a background template, with bins that are empty (Σw ≤ 0) handled by ``policy``.

    ``"error"`` raises naming the bins. ``"floor"`` sets such a bin to 10⁻³ of the smallest positive bin
    and gives it the variance of one event of the template's mean weight, so that the fit knows the bin is
    poorly known rather than exactly empty (the expected yield of a Poisson term must be positive).
    """
    values, variances = template_arrays(h)
    empty = values <= 0
    if not empty.any():
        return values, variances
    if policy == "error":
        edges = h.axes[0].edges
        where = ", ".join(f"[{edges[i]:g}, {edges[i + 1]:g})" for i in np.flatnonzero(empty)[:5])
        raise InputError(
            f"the {name} template has {int(empty.sum())} bin(s) with no positive yield ({where}"
            f"{', …' if empty.sum() > 5 else ''}); use fewer or wider bins, more events, or "
            "empty_bins='floor'"
        )
    positive = values[~empty]
    if positive.size == 0:
        raise InputError(f"the {name} template is empty in the fit range")
    mean_weight = float(values.sum() / max(np.sum(values**2 / np.where(variances > 0, variances, np.inf)), 1.0))
    values = np.where(empty, 1e-3 * positive.min(), values)
    variances = np.where(empty, mean_weight**2, variances)
    return values, variances
