"""Export run.py's t t̄ training split and the first 100 000 held-out events (18 continuous features) for
device_learning_curve.py (float32 halves the transfer) and train_and_save.py (float64: a model meant for run.py must
see run.py's values; trained on float32, it puts the m_lv = m_W spike at float32(m_W) and a C2ST against the float64
MC separates the two at AUC 0.90).   python gpu_inputs/export.py N_BACKGROUND [N_HOLDOUT [DTYPE]]; N_HOLDOUT 0 writes
the training split alone."""

import sys
from pathlib import Path

import awkward as ak
import numpy as np

from mcsurrogate.amplification import CONTINUOUS_FEATURES
from mcsurrogate.workflows.amplification_study import study_background

n_background = int(sys.argv[1])
n_holdout = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
dtype = np.dtype(sys.argv[3]) if len(sys.argv) > 3 else np.dtype(np.float32)
parts, info = study_background("cache/higgs_benchmark", n_background, seed=1)
exports = {"train": parts.train} | ({"holdout": parts.holdout[:n_holdout]} if n_holdout > 0 else {})
for name, part in exports.items():
    slim = ak.zip({f: ak.values_astype(part[f], dtype) for f in CONTINUOUS_FEATURES}, depth_limit=1)
    ak.to_parquet(slim, f"gpu_inputs/{name}.parquet", compression="zstd")
    print(name, len(slim), Path(f"gpu_inputs/{name}.parquet").stat().st_size / 1e6, "MB")
