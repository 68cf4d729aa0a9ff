"""One learning-curve point of analyses/higgs_amplification/learning_curve.py, run on a GPU machine from splits
exported on the CPU machine (gpu_inputs/train.parquet: run.py's t t̄ training split of --n-background 400000,
seed 1; gpu_inputs/holdout.parquet: the first 100 000 held-out events; 18 continuous features as float32, which the
flow computes in anyway). Same candidate recipe and C2ST as learning_curve.py (patience 15, batch 1024, seed 1,
EMA 0.999, mass differences, 200 permutations), at paper B's final size (30 blocks x 512).

    python3 device_learning_curve.py ACTIVATION EPOCHS OUTDIR
"""

import json
import sys
import time
from pathlib import Path

import awkward as ak
import torch

from mcsurrogate.amplification import CONTINUOUS_FEATURES, learning_curve, paper_b_candidates

activation, epochs, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
t0 = time.perf_counter()
train = ak.from_parquet("gpu_inputs/train.parquet")
holdout = ak.from_parquet("gpu_inputs/holdout.parquet")
(candidate,) = paper_b_candidates(
    families=["made-mog"],
    preprocessings=["gauss-rank"],
    blocks=30,
    hidden=512,
    activation=activation,
    differences=["masses"],
)
training = {"epochs": epochs, "patience": 15, "batch_size": 1024, "seed": 1, "ema_decay": 0.999}
rows = learning_curve(
    train,
    holdout,
    candidate,
    [len(train)],
    features=CONTINUOUS_FEATURES,
    training=training,
    n_permutations=200,
    seed=1,
    checkpoint_dir=Path("/tmp/ckpt") / activation,
    progress=False,
)
report = {
    "command": "python3 device_learning_curve.py " + " ".join(sys.argv[1:]),
    "candidate": {"name": candidate.name, "flow": dict(candidate.flow), "preprocessing": candidate.preprocessing},
    "training": training,
    "c2st_events_per_class": len(holdout),
    "device": f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "CPU",
    "rows": [r.to_dict() | {"converged": r.best_epoch < r.epochs_run} for r in rows],
    "wall_s": time.perf_counter() - t0,
}
(out / "report.json").write_text(json.dumps(report, indent=1, default=float))
r = rows[0]
print(
    f"{candidate.name} {activation}: epochs {r.epochs_run} (best {r.best_epoch}), NLL {r.nll:.3f}, "
    f"AUC {r.auc:.4f} [{r.auc_ci[0]:.4f}, {r.auc_ci[1]:.4f}], max W1/base {r.w1_ratio_max:.2f}, "
    f"train {r.train_seconds:.0f} s, {r.parameters} parameters"
)
