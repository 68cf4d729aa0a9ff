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

Both flows (same family, preprocessing and training, the same number of optimiser steps) learn the ``FEATURES``
(GeV), unconditionally; the weighted one with ``weights="weight"``. Judged (:func:`compare`): the C2ST AUC of
``n_reference`` generated events against the reference (the issue's bar: the weighted flow within 0.01 of the
matched one), and in the high-p_T tail of p_T^γγ the 1-D Wasserstein distance of the tail's shape (GeV) and the
weighted χ² of the p_T^γγ histogram above ``tail_pt`` (bulk as underflow: the tail's share counts too) against the
tail reference. Floors: the unbiased reference sample itself (a perfect generator of ``n_reference`` events) for
the tail figures, Pythia's own matched and (weighted) biased samples for the C2ST.

The preprocessing is Gauss-rank with 10⁴ knots by probability; for the weighted sample ``GaussRank`` adds as many
knots by event count (its ``event_knots="auto"``), so that its tail, many events of small weight, keeps its
resolution. Knots by weighted probability alone (10³ of them) spread the weighted sample's top 0.1 % of probability
evenly over 0.68–2.6 TeV: the weighted flow's tail W1 was 20.1 GeV, with 10⁴ of them 10.6 (seed 0), with the event
knots 8.7.

:func:`run_weighted_mc` runs the study once per seed (samples and flows) and judges the bars on the seeds' means.
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

from ..errors import InputError
from ..files import atomic_write_text
from ..io import read_events, write_events
from ..records import DerivedObservable, FeatureSpec, ObjectSlots

__all__ = [
    "FEATURES",
    "SUMMARY_KEYS",
    "TAIL_QUANTILES",
    "WeightedMCConfig",
    "compare",
    "feature_spec",
    "matrix",
    "plot",
    "plot_summary",
    "pt_gg",
    "run_weighted_mc",
    "samples",
    "spectra",
    "study",
    "summarise",
    "train_flows",
    "write_readme",
]

log = logging.getLogger(__name__)

#: the flows' targets: the diphoton system's p_T (GeV) and rapidity, the leading photon's E_T (GeV) and η. Two
#: massless photons from a narrow resonance (m_γγ = 125 GeV) have 4 free numbers once the azimuth is dropped: more
#: photon variables (E_T, η of both and Δφ) would lie on a 4-D surface that a 5-D flow can only blur
FEATURES = ["pt_gg", "y_gg", "photon1_pt", "photon1_eta"]


@dataclass
class WeightedMCConfig:
    """Sizes, bias, flow and training of the study (defaults: about 12 minutes a seed on one thread of a shared
    2-core machine, 5 CPU-minutes)."""

    n_biased: int = 30_000
    n_reference: int = 30_000
    n_tail_reference: int = 30_000
    n_generated: int = 100_000
    bias_power: float = 1.5
    tail_pt: float = 200.0
    tail_edges: tuple[float, ...] = (200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 700.0)
    flow: dict[str, Any] = field(
        default_factory=lambda: {
            "model": "rqs-ar",
            "affine_blocks": 1,
            "blocks": 3,
            "hidden": 64,
            "bins": 12,
            "tail_bound": 6.0,
        }
    )
    preprocessing: Any = field(default_factory=lambda: [{"name": "gauss-rank", "n_quantiles": 10_000}])
    training: dict[str, Any] = field(
        default_factory=lambda: {
            "epochs": 150,
            "batch_size": 512,
            "lr": 1e-3,
            "patience": 15,
            "ema_decay": 0.999,
            "device": "cpu",
        }
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
        objects=[ObjectSlots("photons", 1, fields=("pt", "eta"))],
        derived=[
            DerivedObservable("pt_gg", "pair_pt", "photons"),
            DerivedObservable("y_gg", "pair_rapidity", "photons"),
        ],
    )


def pt_gg(x: np.ndarray) -> np.ndarray:
    """p_T^γγ (GeV) of ``FEATURES`` rows."""
    return x[:, FEATURES.index("pt_gg")]


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
    """``{"weighted": flow on the biased sample with its weights, "matched": flow on the matched sample}``. The
    matched sample is smaller: its flow trains for proportionally more epochs, so that both take the same number of
    optimiser steps (early stopping on the validation NLL guards both)."""
    from ..surrogate import Surrogate

    flows = {}
    scale = len(data["biased"]) / len(data["matched"])
    for name, weights in (("weighted", "weight"), ("matched", None)):
        epochs = config.training.get("epochs", 50) * (1.0 if name == "weighted" else scale)
        model = Surrogate(
            spec=feature_spec(),
            flow=config.flow,
            training=config.training | {"seed": config.seed, "epochs": max(1, round(epochs))},
            preprocessing=config.preprocessing,
        )
        t0 = time.perf_counter()
        model.fit(data["biased" if name == "weighted" else "matched"], weights=weights, progress=progress)
        model.metrics["wall_seconds"] = time.perf_counter() - t0
        flows[name] = model
    return flows


#: the figures of each flow that :func:`summarise` averages over the seeds
SUMMARY_KEYS = ("c2st_auc", "w1_tail_gev", "chi2", "tail_fraction")

#: probabilities of the tail's quantiles in report.json: where its W1 comes from
TAIL_QUANTILES = (0.1, 0.5, 0.9, 0.99, 0.999)


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, probs: tuple[float, ...]) -> list[float]:
    """Quantiles of ``x`` with weights ``w`` (the smallest value whose cumulative weight share reaches each p)."""
    order = np.argsort(x)
    cum = np.cumsum(w[order]) / w.sum()
    index = np.minimum(np.searchsorted(cum, np.asarray(probs)), len(x) - 1)
    return [float(v) for v in x[order][index]]


def _tail(values: np.ndarray, ref: np.ndarray, w_ref: np.ndarray | None, config: WeightedMCConfig) -> dict[str, Any]:
    """Tail figures of p_T^γγ ``values`` (unweighted) against ``ref`` (weights ``w_ref``), and both tails'
    quantiles (GeV) at ``TAIL_QUANTILES``."""
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
        "tail_quantiles_gev": _weighted_quantiles(values[above], np.ones(int(above.sum())), TAIL_QUANTILES),
        "tail_quantiles_reference_gev": _weighted_quantiles(ref[ref_above], w[ref_above], TAIL_QUANTILES),
    }


def _c2st(reference: np.ndarray, candidate: np.ndarray, weights: np.ndarray | None, seed: int) -> dict[str, Any]:
    from ..validation import c2st

    res = c2st(
        reference, candidate, weights_candidate=weights, n_repeats=3, n_permutations=100, n_bootstrap=0, seed=seed
    )
    return {
        "c2st_auc": res.auc,
        "c2st_auc_ci": list(res.auc_ci),
        "c2st_p_value": res.p_value,
        "c2st_events_per_sample": min(len(reference), len(candidate)),
    }


def compare(flows: dict[str, Any], data: dict[str, ak.Array], config: WeightedMCConfig) -> dict[str, Any]:
    """Per flow: the C2ST of ``n_reference`` generated events against the unbiased reference and the tail figures of
    ``n_generated`` events against the tail reference. The floors: the unbiased reference sample's own tail figures
    (a perfect generator of ``n_reference`` events), and the C2ST of Pythia's own samples against the reference —
    the matched (unbiased) sample, and the biased sample with its weights (the bias is compensated)."""
    ref = matrix(data["reference"])
    tail_ref = matrix(data["tail_reference"])
    w_tail = data["tail_reference"].weight.to_numpy()
    rows: dict[str, Any] = {}
    for name, model in flows.items():
        gen = model.sample_array(config.n_generated, seed=config.seed + 10)
        rows[name] = (
            _c2st(ref, gen[: len(ref)], None, config.seed)
            | {
                "kish_effective_size_train": model.metrics["weights"]["kish_effective_size"],
                "n_train": model.metrics["weights"]["n_train"],
                "epochs": model.train_config.epochs,
                "best_epoch": model.metrics["training"]["best_epoch"],
                "stopped_early": model.metrics["training"]["stopped_early"],
                "train_seconds": model.metrics["wall_seconds"],
                "pt_gg": pt_gg(gen),
            }
            | _tail(pt_gg(gen), pt_gg(tail_ref), w_tail, config)
        )
    rows["reference sample"] = {"pt_gg": pt_gg(ref)} | _tail(pt_gg(ref), pt_gg(tail_ref), w_tail, config)
    floors = {
        "unbiased Pythia (matched sample)": _c2st(ref, matrix(data["matched"]), None, config.seed),
        "biased Pythia, weighted": _c2st(ref, matrix(data["biased"]), data["biased"].weight.to_numpy(), config.seed),
    }
    weighted, matched = rows["weighted"], rows["matched"]
    delta = weighted["c2st_auc"] - matched["c2st_auc"]
    return {
        "rows": rows,
        "c2st_floors": floors,
        "c2st_auc_difference": delta,
        "bar_c2st_within_0.01": bool(delta <= 0.01),
        "tail_ratios_matched_over_weighted": {
            "w1_tail_gev": matched["w1_tail_gev"] / weighted["w1_tail_gev"],
            "chi2": matched["chi2"] / weighted["chi2"],
        },
        "tail_quantile_probabilities": list(TAIL_QUANTILES),
        "tail_better": bool(weighted["w1_tail_gev"] < matched["w1_tail_gev"] and weighted["chi2"] < matched["chi2"]),
    }


#: colours and labels of the figures' rows
_STYLE = {
    "weighted": ("tab:blue", "flow trained on the weighted biased sample"),
    "matched": ("tab:orange", "flow trained on an unweighted sample of equal Kish size"),
    "reference sample": ("tab:gray", "unbiased Pythia 8 (reference sample)"),
}


def spectra(result: dict[str, Any], data: dict[str, ak.Array], edges: np.ndarray | None = None) -> dict[str, Any]:
    """The numbers of ``pt_gg.png``: per p_T^γγ bin (GeV) the weighted tail reference's fraction of events and its
    error, each row's fraction of its events, and the events of each flow's sample per bin (unweighted counts; 80 %
    of them in its training split)."""
    edges = np.linspace(0.0, 700.0, 36) if edges is None else edges
    ref = pt_gg(matrix(data["tail_reference"]))
    w = data["tail_reference"].weight.to_numpy()
    w = w / w.sum()
    frac, _ = np.histogram(ref, edges, weights=w)
    var, _ = np.histogram(ref, edges, weights=w**2)
    out: dict[str, Any] = {
        "edges_gev": edges.tolist(),
        "tail_reference": {"fraction": frac.tolist(), "error": np.sqrt(var).tolist()},
        "rows": {},
        "training_events": {},
    }
    for name, row in result["rows"].items():
        h, _ = np.histogram(row["pt_gg"], edges)
        out["rows"][name] = (h / len(row["pt_gg"])).tolist()
    for name, sample in (("weighted", "biased"), ("matched", "matched")):
        out["training_events"][name] = np.histogram(pt_gg(matrix(data[sample])), edges)[0].tolist()
    return out


def plot(figure: dict[str, Any], out: Path) -> Path:
    """``pt_gg.png``: p_T^γγ of both flows and the reference sample against the weighted tail reference, their
    ratio to it, and the events of the sample each flow was trained on per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(figure["edges_gev"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    ref = np.asarray(figure["tail_reference"]["fraction"])
    fig, (ax, rax, tax) = plt.subplots(
        3, 1, figsize=(6.4, 7.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]}
    )
    ax.errorbar(
        centres,
        ref,
        figure["tail_reference"]["error"],
        fmt="ko",
        ms=3,
        label="biased Pythia 8, weighted (tail reference)",
    )
    for name, h in figure["rows"].items():
        color, label = _STYLE[name]
        ax.stairs(h, edges, color=color, label=label)
        with np.errstate(divide="ignore", invalid="ignore"):
            rax.stairs(np.where(ref > 0, np.asarray(h) / ref, np.nan), edges, color=color)
    for name, counts in figure["training_events"].items():
        tax.stairs(counts, edges, color=_STYLE[name][0])
    ax.set_yscale("log")
    ax.set_ylabel("fraction of events per bin")
    ax.legend(fontsize=7)
    rax.axhline(1.0, color="k", lw=0.5)
    rax.set_ylim(0.0, 2.0)
    rax.set_ylabel("/ reference")
    tax.set_yscale("log")
    tax.set_ylabel("events of the\nsample trained on", fontsize=8)
    tax.set_xlabel(r"$p_T^{\gamma\gamma}$ [GeV]")
    fig.tight_layout()
    path = out / "pt_gg.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_summary(report: dict[str, Any], out: Path) -> Path:
    """``summary.png``: per seed (dots) and their mean (bar), the C2ST AUC of both flows and of Pythia's own
    samples against the reference, and the tail's W1 (GeV) and χ²/ndf of both flows and of the reference sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r["comparison"] for r in report["runs"].values()]
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.4))
    panels = (
        ("c2st_auc", "C2ST AUC against unbiased Pythia", ["weighted", "matched", *runs[0]["c2st_floors"]]),
        ("w1_tail_gev", "W1 of the tail [GeV]", ["weighted", "matched", "reference sample"]),
        ("chi2_per_ndf", r"$\chi^2$/ndf of the tail", ["weighted", "matched", "reference sample"]),
    )
    labels = {
        "weighted": "weighted flow",
        "matched": "matched flow",
        "reference sample": "unbiased Pythia",
        "unbiased Pythia (matched sample)": "unbiased Pythia",
        "biased Pythia, weighted": "biased Pythia, weighted",
    }
    for ax, (key, title, names) in zip(axes, panels, strict=True):
        for y, name in enumerate(names):
            values = []
            for c in runs:
                row = c["rows"].get(name) or c["c2st_floors"][name]
                values.append(row["chi2"] / row["chi2_ndf"] if key == "chi2_per_ndf" else row[key])
            color = _STYLE[name][0] if name in _STYLE else "tab:gray"
            base = 0.5 if key == "c2st_auc" else 0.0  # AUC bars start at 0.5, indistinguishable
            ax.barh(y, np.mean(values) - base, left=base, color=color, alpha=0.35)
            ax.scatter(values, y + np.linspace(-0.2, 0.2, len(values)), color=color, s=12, zorder=3)
        ax.set_yticks(np.arange(len(names)), [labels[n] for n in names])
        ax.set_xlabel(title)
    axes[0].axvline(0.5, color="k", lw=0.5)
    axes[1].set_title(
        rf"$p_T^{{\gamma\gamma}}$ > {report['config']['tail_pt']:.0f} GeV against biased Pythia, weighted; "
        f"dots: {len(runs)} seeds, bars: mean",
        fontsize=8,
        loc="left",
    )
    fig.tight_layout()
    path = out / "summary.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def study(config: WeightedMCConfig, cache: Path, progress: bool | None = None) -> dict[str, Any]:
    """One seed of the study: its samples, both flows, the comparison and the numbers of ``pt_gg.png``."""
    t0 = time.perf_counter()
    data, meta = samples(config, cache, progress)
    t_samples = time.perf_counter() - t0
    flows = train_flows(data, config, progress)
    result = compare(flows, data, config)
    figure = spectra(result, data)
    for row in result["rows"].values():
        del row["pt_gg"]
    return {
        "seed": config.seed,
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
        "figure_pt_gg": figure,
        "training": {
            k: {"weights": m.metrics["weights"], "split": m.metrics["split"], "flow": m.flow_config.to_dict()}
            for k, m in flows.items()
        },
        "seconds": {"samples": t_samples, "total": time.perf_counter() - t0},
    }


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and SD over the seeds of each flow's C2ST AUC, tail W1 (GeV), χ² and tail fraction and of the AUC
    difference; the bars judged on the means, and how many seeds meet each on their own."""
    comparisons = [r["comparison"] for r in runs.values()]

    def stats(values: list[float]) -> dict[str, Any]:
        return {
            "values": values,
            "mean": float(np.mean(values)),
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        }

    out: dict[str, Any] = {
        name: {key: stats([c["rows"][name][key] for c in comparisons]) for key in SUMMARY_KEYS}
        for name in ("weighted", "matched")
    }
    out["c2st_auc_difference"] = stats([c["c2st_auc_difference"] for c in comparisons])
    w, m = out["weighted"], out["matched"]
    out["bar_c2st_within_0.01"] = bool(out["c2st_auc_difference"]["mean"] <= 0.01)
    out["tail_better"] = bool(
        w["w1_tail_gev"]["mean"] < m["w1_tail_gev"]["mean"] and w["chi2"]["mean"] < m["chi2"]["mean"]
    )
    out["seeds_meeting"] = {
        "c2st_within_0.01": sum(c["bar_c2st_within_0.01"] for c in comparisons),
        "tail_w1_better": sum(
            c["rows"]["weighted"]["w1_tail_gev"] < c["rows"]["matched"]["w1_tail_gev"] for c in comparisons
        ),
        "tail_chi2_better": sum(c["rows"]["weighted"]["chi2"] < c["rows"]["matched"]["chi2"] for c in comparisons),
        "of": len(comparisons),
    }
    return out


def run_weighted_mc(
    config: WeightedMCConfig,
    out: Path,
    cache: Path,
    seeds: tuple[int, ...] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """The whole study for each of ``seeds`` (default: ``config.seed``; a seed s takes Pythia seeds s … s + 3, so
    seeds must lie 4 or more apart), their summary, ``pt_gg.png`` (the first seed), ``summary.png`` and
    ``report.json`` (every number the figures show) in ``out``."""
    from .. import __version__

    seeds = (config.seed,) if seeds is None else tuple(seeds)
    if not seeds or any(abs(a - b) < 4 for i, a in enumerate(seeds) for b in seeds[i + 1 :]):
        raise InputError(f"seeds must be one or more integers 4 or more apart (each takes 4 Pythia seeds), got {seeds}")
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    runs = {str(s): study(dataclasses.replace(config, seed=s), cache, progress) for s in seeds}
    first = runs[str(seeds[0])]
    report = {
        "config": config.to_dict() | {"seed": None},
        "seeds": list(seeds),
        "summary": summarise(runs),
        "figure_pt_gg": {"seed": seeds[0]} | first["figure_pt_gg"],
        "runs": {k: {key: v for key, v in r.items() if key != "figure_pt_gg"} for k, r in runs.items()},
        "seconds": {"total": time.perf_counter() - t0},
        "mcsurrogate_version": __version__,
    }
    plot(first["figure_pt_gg"], out)
    plot_summary(report, out)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    return report


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def _mean_sd(stat: dict[str, Any], digits: int) -> str:
    sd = "" if stat["sd"] is None else f" ± {stat['sd']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{sd}"


def write_readme(report: dict[str, Any], out: Path, meta: dict[str, Any]) -> Path:
    """``README.md`` of the results: the command, seeds, versions, machine and wall time (``meta``: ``command``,
    ``versions``, ``machine``, ``wall_seconds``, ``cpu_seconds``), a row per seed and flow and the seeds' means."""
    summary, runs = report["summary"], report["runs"]
    first = next(iter(runs.values()))
    biased = first["samples"]["biased"]
    verdict = {True: "met", False: "NOT met"}
    tail_pt = report["config"]["tail_pt"]
    seeds = "; ".join(
        f"study seed {k}: Pythia " + ", ".join(f"{name} {v['seed']}" for name, v in r["samples"].items())
        for k, r in runs.items()
    )
    lines = [
        "# Weighted Monte Carlo end to end (issue 29): results",
        "",
        (
            "Produced by `analyses/weighted_mc/run.py`; `report.json` holds every number, `pt_gg.png` (first seed) and"
            " `summary.png` (all seeds) are the figures."
        ),
        "",
        f"- command: `{meta['command']}`",
        f"- seeds: {seeds}; flow training and generation: the study seed",
        f"- versions: {meta['versions']}",
        f"- machine: {meta['machine']}",
        f"- wall time: {meta['wall_seconds'] / 60:.1f} min (CPU time: {meta['cpu_seconds'] / 60:.1f} min)",
        (
            f"- per seed: a biased sample of {biased['n_events']} events over-sampled by (p̂_T / 20 GeV)^"
            f"{biased['bias_power']} (Kish effective size "
            + ", ".join(f"{r['samples']['biased']['kish_effective_size']:.0f}" for r in runs.values())
            + f"), an unbiased sample of that many events, {first['samples']['reference']['n_events']} unbiased "
            f"reference and {first['samples']['tail_reference']['n_events']} biased tail-reference events"
        ),
        "",
        (
            f"| seed | flow | trained on | C2ST AUC vs unbiased Pythia [95 % CI] | W1, p_T^γγ > {tail_pt:.0f} GeV "
            "[GeV] | χ²/ndf of the tail | tail fraction (reference) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for seed, r in runs.items():
        rows = r["comparison"]["rows"]
        for name in ("weighted", "matched", "reference sample"):
            row = rows[name]
            if name == "reference sample":
                trained, auc = f"(unbiased Pythia, {r['samples']['reference']['n_events']} events: the floor)", "–"
            else:
                low, high = row["c2st_auc_ci"]
                trained = f"{row['n_train']} events, Kish {row['kish_effective_size_train']:.0f}"
                auc = f"{row['c2st_auc']:.4f} [{low:.4f}, {high:.4f}]"
            lines.append(
                f"| {seed} | {name} | {trained} | {auc} | {row['w1_tail_gev']:.2f} | {row['chi2']:.1f}/"
                f"{row['chi2_ndf']} | {row['tail_fraction']:.4f} ({row['tail_fraction_reference']:.4f}) |"
            )
    for name in ("weighted", "matched"):
        st = summary[name]
        lines.append(
            f"| mean ± SD | {name} | | {_mean_sd(st['c2st_auc'], 4)} | {_mean_sd(st['w1_tail_gev'], 2)} | "
            f"{_mean_sd(st['chi2'], 1)} (χ²) | {_mean_sd(st['tail_fraction'], 4)} |"
        )
    probs = report["runs"][next(iter(runs))]["comparison"]["tail_quantile_probabilities"]
    lines += ["", f"Quantiles of the tail p_T^γγ > {tail_pt:.0f} GeV (GeV) at probabilities {probs}:", ""]
    for seed, r in runs.items():
        rows = r["comparison"]["rows"]
        lines.append(
            f"- seed {seed}: tail reference {_rounded(rows['weighted']['tail_quantiles_reference_gev'])}; "
            + "; ".join(
                f"{k} {_rounded(rows[k]['tail_quantiles_gev'])}" for k in ("weighted", "matched", "reference sample")
            )
        )
    floors = "; ".join(
        f"seed {seed}: " + ", ".join(f"{k} {v['c2st_auc']:.4f}" for k, v in r["comparison"]["c2st_floors"].items())
        for seed, r in runs.items()
    )
    meeting = summary["seeds_meeting"]
    lines += [
        "",
        f"C2ST of Pythia's own samples against the reference (the floor): {floors}.",
        "",
        (
            f"Bars, on the means over the seeds: C2ST AUC weighted − matched = "
            f"{_mean_sd(summary['c2st_auc_difference'], 4)} (≤ 0.01: {verdict[summary['bar_c2st_within_0.01']]}; "
            f"{meeting['c2st_within_0.01']} of {meeting['of']} seeds); the weighted flow better in the tail on both "
            f"W1 and χ²: {verdict[summary['tail_better']]} (W1 lower in {meeting['tail_w1_better']}, χ² lower in "
            f"{meeting['tail_chi2_better']} of {meeting['of']} seeds)."
        ),
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
