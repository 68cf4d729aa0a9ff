"""Paper B's final MADE-MoG size (30 x 512, ReLU) on the learning-curve recipe, trained on a GPU from the exported
splits (see device_learning_curve.py), scored on the held-out MC unweighted (as amplification.compare_models does)
and with run.py --reweight's classifier weights (refinement.fit_reweighting against the training MC, a fit sample of
2 x the training events, seeds as run.py's). Writes report.json after each stage.

    python3 device_reweighted.py SEED EPOCHS OUTDIR [BLOCKS HIDDEN]
"""

import json
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import torch

from mcsurrogate.amplification import CONTINUOUS_FEATURES, generate, paper_b_candidates, with_differences
from mcsurrogate.records import feature_matrix
from mcsurrogate.validation import validate
from mcsurrogate.workflows.amplification_study import fit_generated_reweighting

seed, epochs, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
blocks, hidden = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (30, 512)
out.mkdir(parents=True, exist_ok=True)
F = list(CONTINUOUS_FEATURES)
t0 = time.perf_counter()
train = ak.from_parquet("gpu_inputs/train.parquet")
holdout = ak.from_parquet("gpu_inputs/holdout.parquet")
(cand,) = paper_b_candidates(
    families=["made-mog"], preprocessings=["gauss-rank"], blocks=blocks, hidden=hidden, differences=["masses"]
)
training = {"epochs": epochs, "patience": 15, "batch_size": 1024, "seed": seed, "ema_decay": 0.999}
report = {
    "command": "python3 device_reweighted.py " + " ".join(sys.argv[1:]),
    "candidate": {"name": cand.name, "flow": dict(cand.flow), "preprocessing": cand.preprocessing},
    "training": training,
    "device": f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "CPU",
    "n_train": len(train),
    "c2st_events_per_class": len(holdout),
}


def save(stage):
    report["stage"] = stage
    report["wall_s"] = time.perf_counter() - t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    print(stage, f"{report['wall_s']:.0f} s", flush=True)


t1 = time.perf_counter()
model = cand.surrogate(F, training).fit(with_differences(train, cand.differences), progress=False)
res = model.result
lp = model.log_prob(with_differences(holdout, cand.differences))
report["fit"] = {
    "best_epoch": res.best_epoch,
    "epochs_run": len(res.history),
    "train_s": time.perf_counter() - t1,
    "parameters": model.n_parameters,
    "nll_holdout": float(-lp[np.isfinite(lp)].mean()),
    "history": [h.__dict__ if hasattr(h, "__dict__") else h for h in res.to_dict()["history"]],
}
save("trained")
x_hold = feature_matrix(holdout, F)
x_gen = feature_matrix(generate(model, len(holdout), source=train, seed=seed + 1), F)


def scores(rep, weights=None):
    ratios = {f: fd.w1_ratio for f, fd in rep.features.items()}
    return {
        "auc": rep.c2st.auc,
        "auc_ci": [float(v) for v in rep.c2st.auc_ci],
        "p_value": rep.c2st.p_value,
        "w1_ratio_max": max(ratios.values()),
        "w1_ratio_worst": max(ratios, key=ratios.get),
        "w1_ratio_by_feature": ratios,
        "flagged_features": rep.flagged_features,
    }


rep = validate(x_hold, x_gen, F, n_permutations=200, density_ratio=False, seed=seed)
report["unweighted"] = scores(rep)
save("unweighted")
t1 = time.perf_counter()
rw = fit_generated_reweighting(model, train, F, seed)
w = rw.weights(x_gen)
report["reweighting"] = {
    **rw.to_dict(),
    "fit_s": time.perf_counter() - t1,
    "kish_efficiency_c2st_sample": float(w.sum() ** 2 / (len(w) * np.sum(w**2))),
    "weight_quantiles": dict(zip(("1%", "50%", "99%"), np.quantile(w, [0.01, 0.5, 0.99]).tolist(), strict=True)),
}
rep_w = validate(x_hold, x_gen, F, weights_candidate=w, n_permutations=200, density_ratio=False, seed=seed)
report["reweighted"] = scores(rep_w)
save("reweighted")
u, r = report["unweighted"], report["reweighted"]
print(
    f"{cand.name} seed {seed}: epochs {report['fit']['epochs_run']} (best {report['fit']['best_epoch']}), "
    f"NLL {report['fit']['nll_holdout']:.3f}, AUC {u['auc']:.4f} {u['auc_ci']}, reweighted {r['auc']:.4f} "
    f"{r['auc_ci']}, W1 max {u['w1_ratio_max']:.2f} / {r['w1_ratio_max']:.2f}, Kish "
    f"{report['reweighting']['kish_efficiency_c2st_sample']:.3f}"
)
