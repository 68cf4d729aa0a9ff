"""Weighted Monte Carlo end to end (issue 29): a flow trained on Pythia's biased, weighted H(→ γγ) + jet sample
against one trained on an unweighted sample of the same Kish effective size, both judged against unbiased MC.

Samples (:func:`samples`; Pythia 8, :mod:`mcsurrogate.generators.biased`, cached as Parquet with a JSON of their
provenance beside each):

* ``biased``: ``n_biased`` events over-sampled by (p̂_T / 20 GeV)^``bias_power``, each with its weight; Kish effective
  size n_eff;
* ``matched``: n_eff unbiased events: the unweighted sample of equal statistical power;
* ``reference``: ``n_reference`` unbiased events, the truth the C2ST compares with;
* ``tail_reference``: ``n_tail_reference`` more biased, weighted events: many events above ``tail_pt``, the truth of
  the tail comparison.

Both flows (same family, preprocessing and training) learn the photons' ``FEATURES`` (GeV, radians),
unconditionally; the weighted one with ``weights="weight"``. Judged (:func:`compare`): the C2ST AUC of
``n_reference`` generated events against the reference (the issue's bar: the weighted flow within 0.01 of the
matched one), and in the high-p_T tail of p_T^γγ the 1-D Wasserstein distance of the tail's shape (GeV) and the
weighted χ² of the p_T^γγ histogram above ``tail_pt`` (bulk as underflow: the tail's share counts too) against the
tail reference; the unbiased reference sample itself, a perfect generator of ``n_reference`` events, gives the
floor of those numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..files import atomic_write_text
from ..io import read_events, write_events
from ..records import DerivedObservable, FeatureSpec, ObjectSlots

__all__ = ["FEATURES", "WeightedMCConfig", "compare", "pt_gg", "run_weighted_mc", "samples", "train_flows"]

log = logging.getLogger(__name__)

#: the flows' targets: leading and subleading photon E_T (GeV) and η, and their signed Δφ (radians)
FEATURES = ["photon1_pt", "photon1_eta", "photon2_pt", "photon2_eta", "dphi_gg"]


@dataclass
class WeightedMCConfig:
    """Sizes, bias, flow and training of the study (defaults: about 30 minutes on 2 shared CPU cores)."""

    n_biased: int = 30_000
    n_reference: int = 30_000
    n_tail_reference: int = 30_000
    n_generated: int = 100_000
    bias_power: float = 1.5
    tail_pt: float = 200.0
    tail_edges: tuple[float, ...] = (200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 700.0)
    flow: dict[str, Any] = field(default_factory=lambda: {"model": "maf", "blocks": 5, "hidden": 64})
    preprocessing: str = "gauss-rank"
    training: dict[str, Any] = field(
        default_factory=lambda: {"epochs": 30, "batch_size": 512, "lr": 1e-3, "patience": 10, "device": "cpu"}
    )
    seed: int = 0
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tail_edges"] = list(self.tail_edges)
        return d


def feature_spec() -> FeatureSpec:
    """The targets of both flows, from the ``photons`` collection."""
    return FeatureSpec(
        targets=FEATURES,
        objects=[ObjectSlots("photons", 2, fields=("pt", "eta"))],
        derived=[DerivedObservable("dphi_gg", "delta_phi", "photons")],
    )


def pt_gg(x: np.ndarray) -> np.ndarray:
    """p_T^γγ (GeV) of ``FEATURES`` rows: |p⃗_T1 + p⃗_T2|."""
    pt1, pt2, dphi = x[:, 0], x[:, 2], x[:, 4]
    return np.sqrt(np.maximum(pt1**2 + pt2**2 + 2 * pt1 * pt2 * np.cos(dphi), 0.0))


def _generate(
    cache: Path, name: str, n: int, seed: int, bias_power: float | None, workers: int, progress: bool | None
) -> tuple[ak.Array, dict[str, Any]]:
    """A cached sample: ``cache/name.parquet`` and its provenance ``name.json`` (generated when absent)."""
    from ..generators.biased import generate_higgs_jet_diphoton

    path, meta_path = cache / f"{name}.parquet", cache / f"{name}.json"
    wanted = {"n_events": n, "seed": seed, "bias_power": bias_power}
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if {k: meta.get(k) for k in wanted} == wanted:
            return read_events(path), meta
    t0 = time.perf_counter()
    events, stats, provenance = generate_higgs_jet_diphoton(
        n, seed=seed, bias_power=bias_power, n_workers=workers, chunk_size=5_000, progress=progress
    )
    meta = wanted | {"provenance": provenance, "stats": stats.to_dict(), "seconds": time.perf_counter() - t0}
    write_events(events, path, overwrite=True)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, allow_nan=False))
    log.info("generated %s: %d events in %.0f s", name, n, meta["seconds"])
    return events, meta


def samples(config: WeightedMCConfig, cache: Path, progress: bool | None = None) -> tuple[dict[str, ak.Array], dict]:
    """The four samples of the module docstring (seeds ``seed`` … ``seed + 3``) and their provenance."""
    cache.mkdir(parents=True, exist_ok=True)
    s, p, out, meta = config.seed, config.bias_power, {}, {}
    out["biased"], meta["biased"] = _generate(
        cache, f"biased_p{p}_s{s}", config.n_biased, s, p, config.workers, progress
    )
    n_eff = round(meta["biased"]["provenance"]["kish_effective_size"])
    for name, n, seed, power in (
        ("matched", n_eff, s + 1, None),
        ("reference", config.n_reference, s + 2, None),
        ("tail_reference", config.n_tail_reference, s + 3, p),
    ):
        tag = f"{name}_p{power}_s{seed}" if power is not None else f"{name}_s{seed}"
        out[name], meta[name] = _generate(cache, tag, n, seed, power, config.workers, progress)
    return out, meta


def matrix(events: ak.Array) -> np.ndarray:
    """The ``FEATURES`` matrix of events (float64)."""
    x, _, _ = feature_spec().matrices(events)
    return x


def train_flows(data: dict[str, ak.Array], config: WeightedMCConfig, progress: bool | None = None) -> dict[str, Any]:
    """``{"weighted": flow on the biased sample with its weights, "matched": flow on the matched sample}``."""
    from ..surrogate import Surrogate

    flows = {}
    for name, weights in (("weighted", "weight"), ("matched", None)):
        model = Surrogate(
            spec=feature_spec(),
            flow=config.flow,
            training=config.training | {"seed": config.seed},
            preprocessing=config.preprocessing,
        )
        t0 = time.perf_counter()
        model.fit(data["biased" if name == "weighted" else "matched"], weights=weights, progress=progress)
        model.metrics["wall_seconds"] = time.perf_counter() - t0
        flows[name] = model
    return flows


def _tail(values: np.ndarray, ref: np.ndarray, w_ref: np.ndarray | None, config: WeightedMCConfig) -> dict[str, float]:
    """Tail figures of p_T^γγ ``values`` (unweighted) against ``ref`` (weights ``w_ref``)."""
    from scipy.stats import wasserstein_distance

    from ..validation.divergences import binned_divergences

    above, ref_above = values > config.tail_pt, ref > config.tail_pt
    chi = binned_divergences(values, ref, np.asarray(config.tail_edges), None, w_ref)
    w = np.ones(len(ref)) if w_ref is None else w_ref
    return {
        "tail_fraction": float(above.mean()),
        "tail_fraction_reference": float(w[ref_above].sum() / w.sum()),
        "tail_events": int(above.sum()),
        "w1_tail_gev": float(wasserstein_distance(values[above], ref[ref_above], None, w[ref_above])),
        "chi2": chi["chi2"],
        "chi2_ndf": chi["chi2_ndf"],
        "chi2_pvalue": chi["chi2_pvalue"],
    }


def compare(flows: dict[str, Any], data: dict[str, ak.Array], config: WeightedMCConfig) -> dict[str, Any]:
    """The C2ST against the unbiased reference and the tail figures against the tail reference, per flow, and
    the reference sample's own tail figures (the floor)."""
    from ..validation import c2st

    ref = matrix(data["reference"])
    tail_ref = matrix(data["tail_reference"])
    w_tail = data["tail_reference"].weight.to_numpy()
    rows: dict[str, Any] = {}
    for name, model in flows.items():
        gen = model.sample_array(config.n_generated, seed=config.seed + 10)
        res = c2st(ref, gen[: len(ref)], n_repeats=3, n_permutations=100, n_bootstrap=0, seed=config.seed)
        rows[name] = {
            "c2st_auc": res.auc,
            "c2st_auc_ci": list(res.auc_ci),
            "c2st_p_value": res.p_value,
            "kish_effective_size_train": model.metrics["weights"]["kish_effective_size"],
            "n_train": model.metrics["weights"]["n_train"],
            "best_epoch": model.metrics["training"]["best_epoch"],
            "train_seconds": model.metrics["wall_seconds"],
            "pt_gg": pt_gg(gen),
        } | _tail(pt_gg(gen), pt_gg(tail_ref), w_tail, config)
    rows["reference sample"] = {"pt_gg": pt_gg(ref)} | _tail(pt_gg(ref), pt_gg(tail_ref), w_tail, config)
    delta = rows["weighted"]["c2st_auc"] - rows["matched"]["c2st_auc"]
    return {
        "rows": rows,
        "c2st_auc_difference": delta,
        "bar_c2st_within_0.01": bool(delta <= 0.01),
        "tail_better": bool(
            rows["weighted"]["w1_tail_gev"] < rows["matched"]["w1_tail_gev"]
            and rows["weighted"]["chi2"] < rows["matched"]["chi2"]
        ),
    }


def plot(result: dict[str, Any], tail_reference: np.ndarray, w_tail: np.ndarray, out: Path) -> Path:
    """p_T^γγ of both flows against the weighted tail reference, with their ratio (``pt_gg.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0.0, 700.0, 36)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ref, _ = np.histogram(tail_reference, edges, weights=w_tail / w_tail.sum())
    var, _ = np.histogram(tail_reference, edges, weights=(w_tail / w_tail.sum()) ** 2)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, ref, np.sqrt(var), fmt="ko", ms=3, label="biased Pythia 8, weighted (tail reference)")
    colors = {"weighted": "tab:blue", "matched": "tab:orange", "reference sample": "tab:gray"}
    labels = {
        "weighted": "flow trained on the weighted sample",
        "matched": "flow trained on an unweighted sample of equal Kish size",
        "reference sample": "unbiased Pythia 8 (reference)",
    }
    for name, row in result["rows"].items():
        h, _ = np.histogram(row["pt_gg"], edges)
        h = h / len(row["pt_gg"])
        ax.stairs(h, edges, color=colors[name], label=labels[name])
        with np.errstate(divide="ignore", invalid="ignore"):
            rax.stairs(np.where(ref > 0, h / ref, np.nan), edges, color=colors[name])
    ax.set_yscale("log")
    ax.set_ylabel("fraction of events per bin")
    ax.legend(fontsize=7)
    rax.axhline(1.0, color="k", lw=0.5)
    rax.set_ylim(0.0, 2.0)
    rax.set_ylabel("/ reference")
    rax.set_xlabel(r"$p_T^{\gamma\gamma}$ [GeV]")
    fig.tight_layout()
    path = out / "pt_gg.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_weighted_mc(config: WeightedMCConfig, out: Path, cache: Path, progress: bool | None = None) -> dict[str, Any]:
    """The whole study: samples, both flows, the comparison, ``pt_gg.png`` and ``report.json`` in ``out``."""
    from .. import __version__

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data, meta = samples(config, cache, progress)
    t_samples = time.perf_counter() - t0
    flows = train_flows(data, config, progress)
    result = compare(flows, data, config)
    tail_ref = pt_gg(matrix(data["tail_reference"]))
    plot(result, tail_ref, data["tail_reference"].weight.to_numpy(), out)
    for row in result["rows"].values():
        del row["pt_gg"]
    report = {
        "config": config.to_dict(),
        "samples": {
            k: {"n_events": v["n_events"], "seed": v["seed"], "bias_power": v["bias_power"]}
            | {
                "kish_effective_size": v["provenance"]["kish_effective_size"],
                "generation_seconds": v.get("seconds"),
                "sigma_gen_mb": v["provenance"]["sigma_gen_mb"],
            }
            for k, v in meta.items()
        },
        "weight_provenance": meta["biased"]["provenance"],
        "comparison": result,
        "training": {k: {"weights": m.metrics["weights"], "split": m.metrics["split"]} for k, m in flows.items()},
        "seconds": {"samples": t_samples, "total": time.perf_counter() - t0},
        "mcsurrogate_version": __version__,
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    return report
