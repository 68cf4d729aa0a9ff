"""HistFactory workspaces from templates: signal × μ, background with a relative systematic and staterror.

The model is pyhf's: one channel, a signal sample scaled by the normfactor ``mu``, a background sample with

* a relative normalisation systematic (``normsys``, hi/lo = 1 ± s), a per-bin shape systematic
  (``shapesys``, uncertainty s × b in every bin, Poisson-constrained), or both;
* ``staterror`` (Barlow–Beeston lite): one γ per bin shared by the samples that carry it, constrained by
  the combined statistical uncertainty √(Σ σ²) of the templates' own events;
* optionally the surrogate's own uncertainty (``surrogate_uncertainty``, a
  :class:`~.surrogate_uncertainty.SurrogateUncertainty`): the spread of an ensemble's templates as histosys shape
  components (``surrogate_shape0`` …, ``surrogate_residual``) or a shapesys (``surrogate_spread``) on the
  background, and/or the spurious-signal systematic (a sample ``spurious_signal`` of the signal's shape whose
  yield has a unit-Gaussian nuisance ``spurious_signal``).

The observation is either given or the Asimov counts μ_inj·s + b of MC templates. The result is a
``pyhf.Workspace``; ``dict(workspace)`` is the JSON anyone can fit with pyhf alone.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Literal

import hist
import numpy as np
import pyhf

from ..arguments import check_bool, check_choice, check_float, check_numeric_array, check_string
from ..errors import InputError
from .surrogate_uncertainty import SurrogateUncertainty
from .templates import check_binning, floor_empty_bins, template_arrays

__all__ = [
    "SystematicKind",
    "asimov_counts",
    "build_workspace",
    "check_finite_template",
    "fast_model",
    "model_and_data",
    "surrogate_uncertainties",
    "workspace_spec",
]

SystematicKind = Literal["normsys", "shapesys", "both", "none"]
#: the values of ``systematic_kind``
SYSTEMATIC_KINDS = typing.get_args(SystematicKind)


def asimov_counts(signal: hist.Hist, background: hist.Hist, mu: float = 0.0) -> np.ndarray:
    """Expected counts μ·s + b per bin of two templates (the Asimov observation of the MC)."""
    check_binning({"signal": signal, "background": background})
    mu = check_float(mu, "mu (the injected signal strength)")
    return mu * template_arrays(signal)[0] + template_arrays(background)[0]


def build_workspace(
    signal: hist.Hist,
    background: hist.Hist,
    observed: np.ndarray | hist.Hist,
    *,
    systematic: float = 0.10,
    systematic_kind: SystematicKind = "normsys",
    staterror: bool = True,
    signal_staterror: bool = True,
    empty_bins: Literal["error", "floor"] = "error",
    channel: str = "signal_region",
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None,
) -> pyhf.Workspace:
    """A one-channel pyhf workspace with POI ``mu`` on the signal template.

    A template with NaN or inf in a bin (Σw or Σw²) or an observation with a NaN, inf or negative count is refused
    with an :class:`~mcsurrogate.errors.InputError` that names the template and the bin: such a number would reach
    the workspace JSON as ``NaN`` (not JSON) and fail a later fit with a message that does not name it. So is an
    argument of the wrong type (``systematic="10%"``, ``staterror="no"``, ``channel=5``), naming the parameter.

    Parameters
    ----------
    signal, background
        Weighted one-axis templates on the same binning (expected yields per bin): ``hist.Hist`` objects from
        :func:`~.templates.fill_template`. A numpy array of yields is refused (not converted): it has no bin edges
        to check against the other templates and no Σw² for the staterror.
    observed
        Observed counts per bin (array, list or histogram), e.g. :func:`asimov_counts` of the MC templates.
    systematic
        Relative background uncertainty (0.10 = 10 %); ``systematic_kind`` says how it enters.
    staterror, signal_staterror
        Add Barlow–Beeston-lite staterror from the background (and signal) template's Σw².
    empty_bins
        What to do with background bins without positive yield (see :func:`~.templates.floor_empty_bins`).
    surrogate_uncertainty
        The generated background's own uncertainty, one or several
        :class:`~.surrogate_uncertainty.SurrogateUncertainty` (histosys / shapesys from an ensemble's spread,
        spurious signal); their modifiers are named in the JSON (``surrogate_shape0``, ``spurious_signal``, …).
    """
    return pyhf.Workspace(
        workspace_spec(
            signal,
            background,
            observed,
            systematic=systematic,
            systematic_kind=systematic_kind,
            staterror=staterror,
            signal_staterror=signal_staterror,
            empty_bins=empty_bins,
            channel=channel,
            surrogate_uncertainty=surrogate_uncertainty,
        )
    )


def surrogate_uncertainties(
    value: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None,
) -> list[SurrogateUncertainty]:
    """``value`` as a list of :class:`~.surrogate_uncertainty.SurrogateUncertainty` (refusing anything else and
    modifier names used twice)."""
    if value is None:
        return []
    items = [value] if isinstance(value, SurrogateUncertainty) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, SurrogateUncertainty):
            raise InputError(
                "surrogate_uncertainty must be a SurrogateUncertainty (SurrogateUncertainty.histosys(spread), "
                f".shapesys(spread) or .spurious(size)) or a list of them; got {type(item).__name__}"
            )
        names += item.modifier_names()
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"modifier name(s) {twice} used by two surrogate uncertainties; give them distinct names")
    return items


def workspace_spec(
    signal: hist.Hist,
    background: hist.Hist,
    observed: np.ndarray | hist.Hist,
    *,
    systematic: float = 0.10,
    systematic_kind: SystematicKind = "normsys",
    staterror: bool = True,
    signal_staterror: bool = True,
    empty_bins: Literal["error", "floor"] = "error",
    channel: str = "signal_region",
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None,
) -> dict[str, Any]:
    """The JSON specification :func:`build_workspace` wraps (same arguments and checks), not yet validated by
    pyhf: for loops that build many models of one structure (:func:`fast_model`)."""
    check_binning({"signal": signal, "background": background})
    systematic = check_float(systematic, "systematic (a relative uncertainty, 0.10 = 10 %)", minimum=0.0, below=1.0)
    check_choice(systematic_kind, "systematic_kind", SYSTEMATIC_KINDS)
    check_choice(empty_bins, "empty_bins", ("error", "floor"))
    check_bool(staterror, "staterror")
    check_bool(signal_staterror, "signal_staterror")
    check_string(channel, "channel")
    edges = signal.axes[0].edges
    check_finite_template(signal, "signal", edges)
    check_finite_template(background, "background", edges)
    s, s_var = template_arrays(signal)
    b, b_var = floor_empty_bins(background, name="background", policy=empty_bins)
    if isinstance(observed, hist.Hist):
        check_binning({"signal": signal, "observed": observed})
        observed = observed.values()
    obs = check_numeric_array(observed, "observed (counts per bin)")
    if obs.shape != b.shape:
        raise InputError(f"the observation has shape {obs.shape}; the templates have {b.size} bins")
    bad = np.flatnonzero(~np.isfinite(obs) | (obs < 0))
    if bad.size:
        raise InputError(
            f"observed counts must be finite and non-negative in every bin; the observation has {obs[bad[0]]} in "
            f"{_bin_name(int(bad[0]), edges)}{f' ({bad.size} such bins)' if bad.size > 1 else ''}"
        )
    if np.any(s < 0):
        raise InputError(f"the signal template has negative yield in {int((s < 0).sum())} bin(s); check its weights")
    if not s.sum() > 0:
        raise InputError("the signal template has no yield in the fit range")

    uncertainties = surrogate_uncertainties(surrogate_uncertainty)

    sig_mods: list[dict[str, Any]] = [{"name": "mu", "type": "normfactor", "data": None}]
    bkg_mods: list[dict[str, Any]] = []
    extra_samples: list[dict[str, Any]] = []
    for unc in uncertainties:
        mods, samples = unc.apply(b, s)
        bkg_mods += mods
        extra_samples += samples
    if systematic > 0 and systematic_kind in ("normsys", "both"):
        bkg_mods.append(
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.0 + systematic, "lo": 1.0 - systematic}}
        )
    if systematic > 0 and systematic_kind in ("shapesys", "both"):
        bkg_mods.append({"name": "bkg_shape", "type": "shapesys", "data": (systematic * b).tolist()})
    if staterror:
        stat_name = f"staterror_{channel}"
        bkg_mods.append({"name": stat_name, "type": "staterror", "data": np.sqrt(b_var).tolist()})
        if signal_staterror:
            sig_mods.append({"name": stat_name, "type": "staterror", "data": np.sqrt(s_var).tolist()})
    spec = {
        "channels": [
            {
                "name": channel,
                "samples": [
                    {"name": "signal", "data": s.tolist(), "modifiers": sig_mods},
                    {"name": "background", "data": b.tolist(), "modifiers": bkg_mods},
                    *extra_samples,
                ],
            }
        ],
        "observations": [{"name": channel, "data": obs.tolist()}],
        "measurements": [{"name": "measurement", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    return spec


def fast_model(spec: dict[str, Any]) -> Any:
    """The pyhf model of a workspace specification (:func:`workspace_spec`) without pyhf's JSON-schema validation
    (≈ 1.5 ms instead of ≈ 30 ms): for toys that rebuild one validated structure with new templates."""
    measurement = spec["measurements"][0]["config"]
    return pyhf.Model(
        {"channels": spec["channels"], "parameters": measurement.get("parameters", [])},
        poi_name=measurement["poi"],
        validate=False,
    )


def _bin_name(i: int, edges: np.ndarray) -> str:
    return f"bin {i} [{edges[i]:g}, {edges[i + 1]:g})"


def check_finite_template(h: hist.Hist, name: str, edges: np.ndarray) -> None:
    """Refuse (InputError naming ``name`` and the bin's edges) a template with NaN or inf in a bin's Σw or Σw²: it
    would reach the workspace JSON as NaN. ``edges``: the bin edges, for the message."""
    values, variances = template_arrays(h)
    bad = np.flatnonzero(~np.isfinite(values) | ~np.isfinite(variances))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"the {name} template has NaN or inf in {bad.size} bin(s), first {_bin_name(i, edges)}: Σw = {values[i]}, "
            f"Σw² = {variances[i]}; check the weights that fill it"
        )


def model_and_data(workspace: pyhf.Workspace) -> tuple[Any, np.ndarray]:
    """The pyhf model and the observed data (main counts + auxiliary data) of a workspace."""
    model = workspace.model()
    return model, np.asarray(workspace.data(model), dtype=float)
