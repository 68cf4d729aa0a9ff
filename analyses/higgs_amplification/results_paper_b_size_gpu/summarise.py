"""Collect the H200 runs of paper B's final MADE-MoG size (raw/*.json, written by device/*.py) next to the CPU
machine's 10 x 128 model of the same recipe (results_learning_curve_800epochs/) into report.json, report.md and
auc.png.    python analyses/higgs_amplification/results_paper_b_size_gpu/summarise.py"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

HERE = Path(__file__).parent
TARGET = 0.52
ACTIVATION = {"relu": "ReLU", "gelu": "GELU"}


def main() -> None:
    raw = {p.stem: json.loads(p.read_text()) for p in sorted((HERE / "raw").glob("*.json"))}
    cpu = json.loads((HERE.parent / "results_learning_curve_800epochs" / "report.json").read_text())
    rows: list[dict[str, Any]] = []
    c = cpu["rows"][0]
    rows.append(
        {
            "model": "10 × 128 ReLU (CPU, 2 threads), seed 1",
            "parameters": c["parameters"],
            "epochs_run": c["epochs_run"],
            "best_epoch": c["best_epoch"],
            "train_s": c["train_seconds"],
            "nll": c["nll"],
            "auc": c["auc"],
            "auc_ci": c["auc_ci"],
            "w1_ratio_max": c["w1_ratio_max"],
            "weighted": False,
            "source": "results_learning_curve_800epochs/report.json",
        }
    )
    for name in ("lc_relu", "lc_gelu"):
        r = raw[name]["rows"][0]
        rows.append(
            {
                "model": f"30 × 512 {ACTIVATION[raw[name]['candidate']['flow']['activation']]} (H200, two trainings "
                "sharing it), seed 1",
                "parameters": r["parameters"],
                "epochs_run": r["epochs_run"],
                "best_epoch": r["best_epoch"],
                "train_s": r["train_seconds"],
                "nll": r["nll"],
                "auc": r["auc"],
                "auc_ci": r["auc_ci"],
                "w1_ratio_max": r["w1_ratio_max"],
                "weighted": False,
                "source": f"raw/{name}.json",
            }
        )
    for name in ("rw_seed1", "rw_seed2"):
        r = raw[name]
        for kind in ("unweighted", "reweighted"):
            rows.append(
                {
                    "model": f"30 × 512 ReLU (H200), seed {r['training']['seed']}"
                    + (", classifier weights" if kind == "reweighted" else ""),
                    "parameters": r["fit"]["parameters"],
                    "epochs_run": r["fit"]["epochs_run"],
                    "best_epoch": r["fit"]["best_epoch"],
                    "train_s": r["fit"]["train_s"],
                    "nll": r["fit"]["nll_holdout"],
                    "auc": r[kind]["auc"],
                    "auc_ci": r[kind]["auc_ci"],
                    "w1_ratio_max": r[kind]["w1_ratio_max"],
                    "w1_ratio_worst": r[kind]["w1_ratio_worst"],
                    "weighted": kind == "reweighted",
                    "kish_efficiency": r["reweighting"]["kish_efficiency_c2st_sample"] if kind == "reweighted" else 1.0,
                    "source": f"raw/{name}.json",
                }
            )
    report = {
        "samples": "run.py's t t̄ sample of 4 × 10⁵ events (seed 1): 1.6 × 10⁵ training, first 10⁵ held-out events",
        "recipe": {k: raw["rw_seed1"]["training"][k] for k in ("epochs", "patience", "batch_size", "ema_decay")}
        | {"preprocessing": "gauss-rank", "differences": "masses", "c2st_events_per_class": 100_000},
        "device": raw["rw_seed1"]["device"],
        "target_auc": TARGET,
        "rows": rows,
    }
    (HERE / "report.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Paper B's final MADE-MoG size on a GPU",
        "",
        (
            f"{report['samples']}; C2ST against the held-out MC with 10⁵ events per class; recipe of "
            "`learning_curve.py` (Gauss-rank, mass differences, EMA 0.999, batch 1024, patience 15) at 30 blocks × 512 "
            f"(paper B's final size), {report['recipe']['epochs']} epochs at most, on {report['device']}. The same seed "
            "gives the same numbers on the GPU (seed 1 twice)."
        ),
        "",
        "| model | parameters | epochs (best) | train s | held-out NLL | C2ST AUC [95 % CI] | max W1/base |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['model']} | {r['parameters']:,} | {r['epochs_run']} ({r['best_epoch']}) | {r['train_s']:.0f} | "
            f"{r['nll']:.3f} | {r['auc']:.4f} [{r['auc_ci'][0]:.4f}, {r['auc_ci'][1]:.4f}] | "
            f"{r['w1_ratio_max']:.2f} |"
            for r in rows
        ),
        "",
        "![AUC](auc.png)",
        "",
        "Classifier weights: `refinement.fit_reweighting` against the training MC on a fit sample of 2 × the training "
        "events, as `run.py --reweight` (Kish efficiency "
        + ", ".join(f"{r['kish_efficiency']:.3f}" for r in rows if r["weighted"])
        + "). The pyhf bars with seed 2's model, retrained on float64 inputs and saved in gzipped parts by "
        "`device/train_and_save.py` (`device/run3.sh`), are in `../results_paper_b_size_reweighted/`.",
        "",
        (
            "Rerun: copy `device/` to `gpu_inputs/` (ignored by git) and the cp312 wheels of mcsurrogate's dependencies "
            "the GPU image lacks (awkward, awkward-cpp, vector, hist, boost-histogram, histoprint, uhi, nflows, "
            "lazy-importer, lz4) to `.whl/`; `python gpu_inputs/export.py 400000 100000` writes the splits (float32: "
            "held-out and generated alike, so the C2ST here is fair; a model for run.py needs `export.py 400000 0 "
            "float64`, see train_and_save.py); on the GPU machine `bash gpu_inputs/run.sh`, `SEED=2 bash "
            "gpu_inputs/run2.sh`, `SEED=1 bash gpu_inputs/run2.sh`; their reports go to `raw/`, then this script."
        ),
        "",
    ]
    (HERE / "report.md").write_text("\n".join(lines))
    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.errorbar(
            r["auc"],
            i,
            xerr=[[r["auc"] - r["auc_ci"][0]], [r["auc_ci"][1] - r["auc"]]],
            fmt="s" if r["weighted"] else "o",
            color="tab:blue" if r["weighted"] else "black",
        )
    ax.axvline(TARGET, color="tab:red", ls=":", label=f"bar: AUC ≤ {TARGET}")
    ax.axvline(0.5, color="grey", ls="--")
    ax.set_yticks(range(len(rows)), [r["model"] for r in rows], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("held-out C2ST AUC (95 % CI), 10⁵ events per class")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(HERE / "auc.png", dpi=110)


if __name__ == "__main__":
    main()
