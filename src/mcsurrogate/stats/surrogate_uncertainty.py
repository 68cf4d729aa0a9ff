"""The surrogate's own uncertainty in the fit: the spread of an ensemble's templates, and the spurious signal.

A generated template has two uncertainties. Its *statistical* one (the staterror of its own N_gen events) shrinks as
more events are generated; its *modelling* one (how far the flow's density is from the truth) does not. This module
turns the second into pyhf modifiers:

* :class:`TemplateSpread`: the per-bin spread of K member templates (an ensemble of surrogates trained on bootstrap
  replicas of the training MC and/or with different seeds, see :class:`mcsurrogate.ensemble.SurrogateEnsemble`)
  around a nominal template; its covariance over bins, eigen-decomposed into a few shape components where the
  members' deviations are correlated across bins;
* :class:`SurrogateUncertainty`: what :func:`~mcsurrogate.stats.workspace.build_workspace` adds to the generated
  sample: ``histosys`` (the leading shape components, named ``<name>_shape<j>``, with the uncorrelated rest as a
  ``shapesys`` named ``<name>_residual``), ``shapesys`` (the per-bin spread as one Poisson-constrained γ per bin,
  ``<name>_spread``) or ``spurious`` (the spurious-signal systematic of ATLAS H→γγ analyses: a signal-shaped
  sample ``spurious_signal`` whose yield θ·S_spur has a unit-Gaussian θ, S_spur = the spurious signal of
  :func:`measure_spurious_signal`);
* :func:`measure_spurious_signal`: the signal fitted when a high-statistics generated template models the MC
  background (no signal in the data), as ATLAS measures it on a high-statistics MC background with its analytic
  background function.

Shapes are relative: a modifier holds, per bin, a *fraction* of the nominal template, so it applies to the template
at any luminosity or normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import hist
import numpy as np

from ..errors import InputError
from .jsonable import strict
from .templates import check_binning, template_arrays

__all__ = [
    "SURROGATE_UNCERTAINTY_KINDS",
    "SpuriousSignal",
    "SurrogateUncertainty",
    "TemplateSpread",
    "measure_spurious_signal",
]

#: the kinds of :class:`SurrogateUncertainty` (the CLI's ``--surrogate-uncertainty``)
SURROGATE_UNCERTAINTY_KINDS: tuple[str, ...] = ("histosys", "shapesys", "spurious")


def _weighted_hist(edges: np.ndarray, values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
    view: Any = h.view()
    view.value = values
    view.variance = variances
    return h


@dataclass(frozen=True)
class TemplateSpread:
    """The per-bin spread of K member templates around a nominal template (expected yields per bin).

    Build it with :meth:`from_templates`. ``members`` (K × bins) are the member templates' yields (scaled to the
    nominal's total when ``shape_only``); ``sampling_variance`` the mean over members of their own Σw² per bin, the
    part of their spread that comes from each member's finite generated sample rather than from the model.
    """

    edges: np.ndarray
    nominal: np.ndarray
    members: np.ndarray
    sampling_variance: np.ndarray
    shape_only: bool = True

    @classmethod
    def from_templates(
        cls, templates: Sequence[hist.Hist], *, nominal: hist.Hist | None = None, shape_only: bool = True
    ) -> TemplateSpread:
        """The spread of ``templates`` (one per ensemble member, same binning, ≥ 2).

        ``nominal``: the template the fit uses (default: the members' mean). ``shape_only`` (default): every member
        is scaled to the nominal's total yield first, so that the spread is a pure shape uncertainty (a generated
        template is normalised to a yield in the fit; its normalisation has its own systematic).
        """
        templates = list(templates)
        if len(templates) < 2:
            raise InputError(f"a template spread needs at least 2 member templates; got {len(templates)}")
        named = {f"member {k}": h for k, h in enumerate(templates)}
        if nominal is not None:
            named = {"nominal": nominal, **named}
        check_binning(named)
        edges = np.asarray(templates[0].axes[0].edges, dtype=float)
        pairs = [template_arrays(h) for h in templates]
        values = np.array([p[0] for p in pairs])
        variances = np.array([p[1] for p in pairs])
        for name, arr in (("values", values), ("variances", variances)):
            bad = np.argwhere(~np.isfinite(arr))
            if bad.size:
                raise InputError(f"member template {int(bad[0, 0])} has NaN or inf Σw or Σw² (its {name})")
        totals = values.sum(axis=1)
        if np.any(totals <= 0):
            raise InputError(f"member template {int(np.argmax(totals <= 0))} has no positive yield in the fit range")
        if nominal is not None:
            nom, _ = template_arrays(nominal)
            if not np.all(np.isfinite(nom)) or not nom.sum() > 0:
                raise InputError("the nominal template must be finite with a positive total yield")
        else:
            nom = None
        if shape_only:
            target = float(nom.sum()) if nom is not None else float(totals.mean())
            factors = target / totals
            values = values * factors[:, None]
            variances = variances * factors[:, None] ** 2
        if nom is None:
            nom = values.mean(axis=0)
        if np.any(nom <= 0):
            raise InputError(
                f"the nominal template has no positive yield in {int((nom <= 0).sum())} bin(s), first bin "
                f"{int(np.argmax(nom <= 0))}; a relative spread needs a positive nominal in every bin (wider bins)"
            )
        return cls(edges, np.asarray(nom, dtype=float), values, variances.mean(axis=0), bool(shape_only))

    @property
    def k(self) -> int:
        """Number of member templates."""
        return int(self.members.shape[0])

    def covariance(self, *, subtract_sampling: bool = True) -> np.ndarray:
        """The members' covariance over bins (bins × bins, yields²; unbiased, ddof = 1).

        ``subtract_sampling`` (default): minus the members' own statistical variance on the diagonal, so that what is
        left is the spread of the models, not of their finite samples (the fit's staterror carries the template's
        own statistics already). Not positive semi-definite in general; :meth:`components` keeps the positive part.
        """
        deviations = self.members - self.members.mean(axis=0)
        cov = deviations.T @ deviations / (self.k - 1)
        if subtract_sampling:
            cov = cov - np.diag(self.sampling_variance)
        return np.asarray(cov)

    def std(self, *, subtract_sampling: bool = True) -> np.ndarray:
        """Per-bin standard deviation of the members (yields; 0 where the sampling variance explains it all)."""
        return np.sqrt(np.clip(np.diag(self.covariance(subtract_sampling=subtract_sampling)), 0.0, None))

    def relative_std(self, *, subtract_sampling: bool = True) -> np.ndarray:
        """Per-bin standard deviation as a fraction of the nominal yield."""
        return self.std(subtract_sampling=subtract_sampling) / self.nominal

    def correlation(self, *, subtract_sampling: bool = False) -> np.ndarray:
        """The members' correlation over bins (bins × bins; 0 for a bin without spread)."""
        cov = self.covariance(subtract_sampling=subtract_sampling)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        outer = np.outer(sd, sd)
        return np.where(outer > 0, cov / np.where(outer > 0, outer, 1.0), 0.0)

    def components(
        self, *, max_components: int = 3, min_fraction: float = 0.95, subtract_sampling: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The leading eigen-components of the covariance: (shifts, explained, residual).

        ``shifts`` (m × bins): the one-σ shift of each component in yields (eigenvector × √eigenvalue, its largest
        entry positive), the fewest m ≤ ``max_components`` whose variance reaches ``min_fraction`` of the total;
        ``explained``: the cumulative fraction of the total variance (trace) the first 1 … m explain; ``residual``
        (bins): the per-bin standard deviation the m components leave (√ of the diagonal rest, ≥ 0).
        """
        if isinstance(max_components, bool) or not isinstance(max_components, int) or max_components < 1:
            raise InputError(f"max_components must be an integer ≥ 1; got {max_components!r}")
        if not 0 < min_fraction <= 1:
            raise InputError(f"min_fraction must be in (0, 1]; got {min_fraction!r}")
        cov = self.covariance(subtract_sampling=subtract_sampling)
        w, v = np.linalg.eigh(cov)
        order = np.argsort(w)[::-1]
        w, v = w[order], v[:, order]
        positive = w > 1e-12 * max(float(w.max(initial=0.0)), 1e-300)
        w, v = w[positive], v[:, positive]
        total = float(np.clip(np.diag(cov), 0.0, None).sum())
        if w.size == 0 or total <= 0:
            return np.zeros((0, self.nominal.size)), np.zeros(0), np.sqrt(np.clip(np.diag(cov), 0.0, None))
        explained = np.minimum(np.cumsum(w) / total, 1.0)
        m = min(int(np.searchsorted(explained, min_fraction - 1e-12) + 1), max_components, w.size)
        shifts = (v[:, :m] * np.sqrt(w[:m])).T
        signs = np.sign(shifts[np.arange(m), np.argmax(np.abs(shifts), axis=1)])
        shifts = shifts * signs[:, None]
        rest = np.diag(cov) - (shifts**2).sum(axis=0)
        return shifts, explained[:m], np.sqrt(np.clip(rest, 0.0, None))

    def nominal_hist(self, *, subtract_sampling: bool = True) -> hist.Hist:
        """The nominal template as a weighted histogram whose variance is the members' spread² per bin."""
        return _weighted_hist(self.edges, self.nominal, self.std(subtract_sampling=subtract_sampling) ** 2)

    def member_hists(self) -> list[hist.Hist]:
        """The (scaled) member templates as weighted histograms (variance: the mean sampling variance)."""
        return [_weighted_hist(self.edges, m, self.sampling_variance) for m in self.members]

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict: edges, nominal, members, sampling variance, per-bin std (model) and correlation."""
        return strict(
            {
                "edges": self.edges,
                "nominal": self.nominal,
                "members": self.members,
                "sampling_variance": self.sampling_variance,
                "shape_only": self.shape_only,
                "k": self.k,
                "std": self.std(),
                "relative_std": self.relative_std(),
                "correlation": self.correlation(),
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateSpread:
        """Read back :meth:`to_dict`."""
        try:
            return cls(
                np.asarray(data["edges"], dtype=float),
                np.asarray(data["nominal"], dtype=float),
                np.asarray(data["members"], dtype=float),
                np.asarray(data["sampling_variance"], dtype=float),
                bool(data.get("shape_only", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a template spread (to_dict of TemplateSpread): {exc}") from exc


UncertaintyKind = Literal["histosys", "shapesys", "spurious"]


@dataclass(frozen=True)
class SurrogateUncertainty:
    """A modifier for the surrogate's residual mismodelling, applied to a generated sample by ``build_workspace``.

    Build one with :meth:`histosys`, :meth:`shapesys` (from a :class:`TemplateSpread`) or :meth:`spurious`.

    ``components`` (histosys: m × bins): relative one-σ shifts of the shape components; ``relative`` (bins): the
    relative per-bin σ of the shapesys (histosys: the residual the components leave); ``spurious_mu``: the
    spurious-signal size in units of the signal strength μ; ``name``: the prefix of the modifiers' names.
    """

    kind: UncertaintyKind
    components: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    relative: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spurious_mu: float = 0.0
    name: str = "surrogate"
    explained: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.kind not in SURROGATE_UNCERTAINTY_KINDS:
            raise InputError(
                f"surrogate uncertainty kind must be one of {', '.join(SURROGATE_UNCERTAINTY_KINDS)}; got {self.kind!r}"
            )
        if not isinstance(self.name, str) or not self.name or not self.name.replace("_", "").isalnum():
            raise InputError(f"a modifier name is letters, digits and '_'; got {self.name!r}")
        if self.kind == "spurious" and not (math.isfinite(self.spurious_mu) and self.spurious_mu >= 0):
            raise InputError(f"the spurious-signal size must be finite and ≥ 0 (units of μ); got {self.spurious_mu}")
        for what, arr in (("components", self.components), ("relative", self.relative)):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"the surrogate uncertainty's {what} contain NaN or inf")
        if self.relative.size and np.any(self.relative < 0):
            raise InputError("a relative per-bin uncertainty cannot be negative")

    @classmethod
    def histosys(
        cls,
        spread: TemplateSpread,
        *,
        max_components: int = 3,
        min_fraction: float = 0.95,
        residual: bool = True,
        name: str = "surrogate",
    ) -> SurrogateUncertainty:
        """The leading shape components of ``spread`` as histosys modifiers (``<name>_shape0`` …) and, with
        ``residual``, what they leave per bin as a shapesys (``<name>_residual``). See :meth:`TemplateSpread.components`."""
        shifts, explained, rest = spread.components(max_components=max_components, min_fraction=min_fraction)
        relative = rest / spread.nominal if residual else np.zeros(0)
        return cls("histosys", shifts / spread.nominal, relative, name=name, explained=explained)

    @classmethod
    def shapesys(cls, spread: TemplateSpread, *, name: str = "surrogate") -> SurrogateUncertainty:
        """The per-bin spread of ``spread`` as one shapesys γ per bin (``<name>_spread``): no bin-to-bin correlation."""
        return cls("shapesys", relative=spread.relative_std(), name=name)

    @classmethod
    def spurious(cls, size: float | SpuriousSignal) -> SurrogateUncertainty:
        """The spurious-signal systematic: a signal-shaped sample ``spurious_signal`` with yield θ · ``size`` · S
        (θ unit-Gaussian, S the signal template's yield); ``size`` in units of μ, or a :class:`SpuriousSignal`
        (its |μ̂|)."""
        mu = abs(size.mu) if isinstance(size, SpuriousSignal) else float(size)
        return cls("spurious", spurious_mu=mu, name="spurious_signal")

    def modifier_names(self) -> list[str]:
        """The names this uncertainty's modifiers get in the workspace JSON."""
        if self.kind == "spurious":
            return [self.name]
        if self.kind == "shapesys":
            return [f"{self.name}_spread"]
        names = [f"{self.name}_shape{j}" for j in range(self.components.shape[0])]
        return names + ([f"{self.name}_residual"] if self.relative.size and np.any(self.relative > 0) else [])

    def apply(
        self, background: np.ndarray, signal: np.ndarray, *, sample: str = "background"
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(modifiers for the generated sample with yields ``background``, extra samples) in pyhf's JSON.

        ``signal``: the signal template's yields (the shape of the spurious-signal sample). Raises
        :class:`~mcsurrogate.errors.InputError` when the binning differs or a shift would empty a bin.
        """
        b = np.asarray(background, dtype=float)
        if self.kind == "spurious":
            s = np.asarray(signal, dtype=float)
            if s.shape != b.shape:
                raise InputError(f"the signal has {s.size} bins; the background {b.size}")
            shift = (self.spurious_mu * s).tolist()
            mod = {"name": self.name, "type": "histosys", "data": {"hi_data": shift, "lo_data": [-x for x in shift]}}
            return [], [{"name": "spurious_signal", "data": [0.0] * b.size, "modifiers": [mod]}]
        widths = {self.relative.size} | ({self.components.shape[1]} if self.components.shape[0] else set())
        if widths - {0, b.size}:
            raise InputError(
                f"the surrogate uncertainty {self.name!r} has {max(widths)} bins; the {sample} template has {b.size}"
            )
        mods: list[dict[str, Any]] = []
        if self.kind == "shapesys":
            return [{"name": f"{self.name}_spread", "type": "shapesys", "data": (self.relative * b).tolist()}], []
        for j, rel in enumerate(self.components):
            big = np.flatnonzero(np.abs(rel) >= 1)
            if big.size:
                raise InputError(
                    f"shape component {j} of {self.name!r} moves bin {int(big[0])} of the {sample} template by "
                    f"{100 * abs(rel[big[0]]):.0f} % of its yield (≥ 100 %: it would empty the bin); use wider bins, "
                    "more generated events per member, or the shapesys kind"
                )
            mods.append(
                {
                    "name": f"{self.name}_shape{j}",
                    "type": "histosys",
                    "data": {"hi_data": (b * (1 + rel)).tolist(), "lo_data": (b * (1 - rel)).tolist()},
                }
            )
        if self.relative.size and np.any(self.relative > 0):
            mods.append({"name": f"{self.name}_residual", "type": "shapesys", "data": (self.relative * b).tolist()})
        return mods, []

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (read back with :meth:`from_dict`)."""
        return strict(
            {
                "kind": self.kind,
                "name": self.name,
                "modifiers": self.modifier_names(),
                "components": self.components,
                "explained": self.explained,
                "relative": self.relative,
                "spurious_mu": self.spurious_mu,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurrogateUncertainty:
        """Read back :meth:`to_dict`."""
        try:
            comps = np.asarray(data.get("components", []), dtype=float)
            return cls(
                data["kind"],
                comps.reshape(0, 0) if comps.size == 0 else comps,
                np.asarray(data.get("relative", []), dtype=float),
                float(data.get("spurious_mu", 0.0)),
                str(data.get("name", "surrogate")),
                np.asarray(data.get("explained", []), dtype=float),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a surrogate uncertainty (to_dict of SurrogateUncertainty): {exc}") from exc


@dataclass(frozen=True)
class SpuriousSignal:
    """The spurious signal of a generated background template: μ̂ (units of the signal strength) fitted to the MC
    background alone, with its statistical σ, signed Z, and the signal yield μ = 1 stands for."""

    mu: float
    sigma: float
    z_signed: float
    signal_yield: float
    background_yield: float

    @property
    def events(self) -> float:
        """The spurious signal in events, μ̂ × the signal yield."""
        return self.mu * self.signal_yield

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict."""
        return strict(
            {
                "mu": self.mu,
                "sigma": self.sigma,
                "z_signed": self.z_signed,
                "events": self.events,
                "signal_yield": self.signal_yield,
                "background_yield": self.background_yield,
            }
        )


def measure_spurious_signal(
    signal: hist.Hist,
    generated: hist.Hist,
    mc: hist.Hist,
    *,
    staterror: bool = True,
) -> SpuriousSignal:
    """The spurious signal of a (high-statistics) generated template: the signal strength μ̂ fitted when the data
    are the MC background alone (no signal) and the background model is ``generated`` with a free normalisation.

    ATLAS H→γγ analyses measure it with their analytic background function (free normalisation and shape
    parameters) on a high-statistics MC background and assign it as a signal-shaped systematic
    (:meth:`SurrogateUncertainty.spurious`). Here the generated template is the background model and only its
    normalisation floats (a normfactor ``background_norm``): what μ̂ absorbs is the template's shape mismatch under
    the signal. With ``staterror`` the template's and the signal's own statistics are fitted too. The signal template
    fixes the units of μ: scale it to the yield μ = 1 stands for at the MC's luminosity.
    """
    from .inference import Inference
    from .workspace import fast_model, workspace_spec

    check_binning({"signal": signal, "generated": generated, "mc": mc})
    mc_values, _ = template_arrays(mc)
    b_yield = float(mc_values.sum())
    if not b_yield > 0:
        raise InputError("the MC background has no yield in the fit range")
    spec = workspace_spec(
        signal, generated, mc_values, systematic=0.0, systematic_kind="none", staterror=staterror, empty_bins="floor"
    )
    background = next(s for s in spec["channels"][0]["samples"] if s["name"] == "background")
    background["modifiers"].append({"name": "background_norm", "type": "normfactor", "data": None})
    model = fast_model(spec)
    inf = Inference(model, np.concatenate([mc_values, np.asarray(model.config.auxdata, dtype=float)]))
    fit, disc = inf.mu_hat(), inf.discovery()
    return SpuriousSignal(fit.mu, fit.sigma, disc.z_signed, float(template_arrays(signal)[0].sum()), b_yield)
