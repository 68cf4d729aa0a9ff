"""Workspaces as analyses write them: several channels, several background samples per channel, from hist objects.

>>> ws = analysis_workspace({
...     "SR": Channel(observed=n_sr, signal=sig_sr, backgrounds={
...         "ttbar": BackgroundSample(tt_sr, kind="generated", surrogate_uncertainty=modifier, normfactor="mu_ttbar"),
...         "other": BackgroundSample(other_sr, normsys=0.2)}),
...     "CR": Channel(observed=n_cr, backgrounds={"ttbar": BackgroundSample(tt_cr, kind="generated",
...                                                                         normfactor="mu_ttbar")}),
... })   # doctest: +SKIP

Every channel is one binned observable (any: a mass in GeV, a classifier score in [0, 1]); its templates share its
binning. Per channel, the signal (optional: a control region has none) is scaled by the POI ``mu``; each background
sample carries, as asked:

* ``staterror`` from its own Σw² (one γ per bin and channel, ``staterror_<channel>``, shared by the samples that
  carry it, Barlow–Beeston lite);
* ``normsys`` (``<sample>_norm``: one parameter per sample name, so correlated between the channels that share it);
* ``shapesys`` (``<channel>_<sample>_shape``: one γ per bin);
* ``normfactor`` (a free normalisation, e.g. fitted in a control region: named by the caller, shared by name);
* named ``histosys`` (``{name: (up, down)}`` templates of the same channel binning; shared by name);
* for generated samples, the surrogate's own uncertainty (:class:`~.surrogate_uncertainty.SurrogateUncertainty`),
  named ``<channel>_<sample>_<modifier>`` (decorrelated between channels and samples: an ensemble's eigen-components
  are computed per template), and the spurious-signal sample ``<channel>_spurious_signal``.

The result is a ``pyhf.Workspace``; :mod:`~.diagnostics` gives pulls, constraints, impacts and pre/post-fit yields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import hist
import numpy as np
import pyhf

from ..errors import InputError
from .surrogate_uncertainty import SurrogateUncertainty
from .templates import check_binning, floor_empty_bins, template_arrays
from .workspace import check_finite_template, surrogate_uncertainties

__all__ = ["BackgroundSample", "Channel", "analysis_workspace"]

SampleKind = Literal["mc", "generated"]


@dataclass(frozen=True)
class BackgroundSample:
    """One background template of a channel and its uncertainties.

    ``template``: expected yields per bin (weighted hist); ``kind``: ``"mc"`` or ``"generated"`` (only a generated
    sample takes ``surrogate_uncertainty``); ``normsys``: relative normalisation uncertainty (0.1 = ±10 %) or
    (down, up) relative shifts; ``shapesys``: relative per-bin uncertainty; ``staterror``: Barlow–Beeston lite from
    its Σw²; ``normfactor``: the name of a free normalisation; ``histosys``: named (up, down) templates.
    """

    template: hist.Hist
    kind: SampleKind = "mc"
    normsys: float | tuple[float, float] | None = None
    shapesys: float | None = None
    staterror: bool = True
    normfactor: str | None = None
    histosys: Mapping[str, tuple[hist.Hist, hist.Hist]] = field(default_factory=dict)
    surrogate_uncertainty: SurrogateUncertainty | Sequence[SurrogateUncertainty] | None = None


@dataclass(frozen=True)
class Channel:
    """One channel (region): its observed counts, its signal template (``None`` for a control region without signal)
    and its background samples by name (a bare hist is an MC sample with staterror)."""

    observed: np.ndarray | hist.Hist
    backgrounds: Mapping[str, BackgroundSample | hist.Hist]
    signal: hist.Hist | None = None
    signal_staterror: bool = True


def _name_ok(name: str, what: str) -> str:
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise InputError(f"{what} names are letters, digits, '_' and '-'; got {name!r}")
    return name


def _normsys(value: float | tuple[float, float], where: str) -> dict[str, float]:
    if isinstance(value, tuple):
        down, up = (float(v) for v in value)
    else:
        down = up = float(value)
    if not (0 <= down < 1 and 0 <= up and np.isfinite(up)):
        raise InputError(f"normsys of {where} must be relative uncertainties, down in [0, 1); got {value!r}")
    return {"hi": 1.0 + up, "lo": 1.0 - down}


def _background(
    channel: str,
    name: str,
    sample: BackgroundSample,
    signal: np.ndarray | None,
    empty_bins: Literal["error", "floor"],
) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """(the pyhf sample, extra samples, its Σw²) of one background."""
    where = f"background {name!r} of channel {channel!r}"
    if sample.kind not in ("mc", "generated"):
        raise InputError(f"the kind of {where} must be 'mc' or 'generated'; got {sample.kind!r}")
    edges = sample.template.axes[0].edges
    check_finite_template(sample.template, where, edges)
    b, b_var = floor_empty_bins(sample.template, name=where, policy=empty_bins)
    mods: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    if sample.normfactor is not None:
        mods.append({"name": _name_ok(sample.normfactor, "normfactor"), "type": "normfactor", "data": None})
    if sample.normsys is not None:
        mods.append({"name": f"{name}_norm", "type": "normsys", "data": _normsys(sample.normsys, where)})
    if sample.shapesys is not None:
        if not 0 < sample.shapesys < 1:
            raise InputError(f"shapesys of {where} is a relative uncertainty in (0, 1); got {sample.shapesys!r}")
        mods.append({"name": f"{channel}_{name}_shape", "type": "shapesys", "data": (sample.shapesys * b).tolist()})
    for syst, pair in sample.histosys.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InputError(f"histosys {syst!r} of {where} must be an (up, down) pair of templates")
        check_binning({"nominal": sample.template, f"{syst} up": pair[0], f"{syst} down": pair[1]})
        up, down = template_arrays(pair[0])[0], template_arrays(pair[1])[0]
        mods.append(
            {
                "name": _name_ok(syst, "histosys"),
                "type": "histosys",
                "data": {"hi_data": up.tolist(), "lo_data": down.tolist()},
            }
        )
    uncertainties = surrogate_uncertainties(sample.surrogate_uncertainty)
    if uncertainties and sample.kind != "generated":
        raise InputError(f"{where} is MC: a surrogate uncertainty belongs to a generated sample (kind='generated')")
    for unc in uncertainties:
        if unc.kind == "spurious":
            if signal is None:
                raise InputError(f"channel {channel!r} has no signal: it cannot carry a spurious-signal uncertainty")
            _, samples = unc.apply(b, signal, sample=where)
            for s in samples:
                s["name"] = f"{channel}_{s['name']}"
                for m in s["modifiers"]:
                    m["name"] = f"{channel}_{m['name']}"
            extra += samples
        else:
            sample_mods, _ = unc.apply(b, np.zeros_like(b), sample=where)
            for m in sample_mods:
                m["name"] = f"{channel}_{name}_{m['name']}"
            mods += sample_mods
    if sample.staterror:
        mods.append({"name": f"staterror_{channel}", "type": "staterror", "data": np.sqrt(b_var).tolist()})
    return {"name": name, "data": b.tolist(), "modifiers": mods}, extra, b_var


def analysis_workspace(
    channels: Mapping[str, Channel],
    *,
    empty_bins: Literal["error", "floor"] = "error",
    poi: str = "mu",
) -> pyhf.Workspace:
    """A pyhf workspace of several channels, each with several background samples (see the module docstring).

    Raises :class:`~mcsurrogate.errors.InputError` naming the channel and sample for bad templates (NaN, negative
    signal, empty background bins with ``empty_bins="error"``), binnings that differ within a channel, observations of
    the wrong length or with negative counts, a channel without backgrounds, or no signal in any channel.
    """
    if not isinstance(channels, Mapping) or not channels:
        raise InputError("channels must be a non-empty mapping of channel name → Channel")
    spec_channels, observations = [], []
    has_signal = False
    for cname, ch in channels.items():
        _name_ok(cname, "channel")
        if not isinstance(ch, Channel):
            raise InputError(f"channel {cname!r} must be a Channel(observed=..., backgrounds=..., signal=...)")
        if not ch.backgrounds:
            raise InputError(f"channel {cname!r} has no background sample")
        backgrounds = {
            _name_ok(n, "sample"): s if isinstance(s, BackgroundSample) else BackgroundSample(s)
            for n, s in ch.backgrounds.items()
        }
        templates = {f"{cname}/{n}": s.template for n, s in backgrounds.items()}
        if ch.signal is not None:
            templates = {f"{cname}/signal": ch.signal, **templates}
        check_binning(templates)
        edges = next(iter(templates.values())).axes[0].edges
        samples: list[dict[str, Any]] = []
        s = None
        if ch.signal is not None:
            has_signal = True
            check_finite_template(ch.signal, f"signal of channel {cname!r}", edges)
            s, s_var = template_arrays(ch.signal)
            if np.any(s < 0):
                raise InputError(f"the signal template of channel {cname!r} has negative yield; check its weights")
            sig_mods: list[dict[str, Any]] = [{"name": poi, "type": "normfactor", "data": None}]
            if ch.signal_staterror:
                sig_mods.append({"name": f"staterror_{cname}", "type": "staterror", "data": np.sqrt(s_var).tolist()})
            samples.append({"name": "signal", "data": s.tolist(), "modifiers": sig_mods})
        for bname, sample in backgrounds.items():
            if bname in ("signal",) or bname.endswith("spurious_signal"):
                raise InputError(f"background sample name {bname!r} is reserved; choose another")
            pyhf_sample, extra, _ = _background(cname, bname, sample, s, empty_bins)
            samples.append(pyhf_sample)
            samples += extra
        observed = ch.observed
        if isinstance(observed, hist.Hist):
            check_binning({f"{cname}/template": next(iter(templates.values())), f"{cname}/observed": observed})
            observed = observed.values()
        obs = np.asarray(observed, dtype=float)
        if obs.shape != (edges.size - 1,):
            raise InputError(f"channel {cname!r}: the observation has {obs.size} bins; its templates {edges.size - 1}")
        if np.any(~np.isfinite(obs) | (obs < 0)):
            raise InputError(f"channel {cname!r}: observed counts must be finite and non-negative")
        spec_channels.append({"name": cname, "samples": samples})
        observations.append({"name": cname, "data": obs.tolist()})
    if not has_signal:
        raise InputError(f"no channel has a signal template: the POI {poi!r} would not act on anything")
    spec = {
        "channels": spec_channels,
        "observations": observations,
        "measurements": [{"name": "measurement", "config": {"poi": poi, "parameters": []}}],
        "version": "1.0.0",
    }
    return pyhf.Workspace(spec)
