"""Export run.py's t t̄ training split and the first 100 000 held-out events (18 continuous features, float32) for
device_learning_curve.py.   python gpu_inputs/export.py N_BACKGROUND [N_HOLDOUT]"""

import sys
from pathlib import Path

import awkward as ak
import numpy as np

sys.path.insert(0, "analyses/higgs_amplification")
from run import cached_sample, split_background

from mcsurrogate.amplification import CONTINUOUS_FEATURES

n_background = int(sys.argv[1])
n_holdout = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
events, info = cached_sample("ttbar", n_background, 1, Path("cache/higgs_benchmark"), workers=2)
parts = split_background(events, 1)
for name, part in (("train", parts["train"]), ("holdout", parts["holdout"][:n_holdout])):
    slim = ak.zip({f: ak.values_astype(part[f], np.float32) for f in CONTINUOUS_FEATURES}, depth_limit=1)
    ak.to_parquet(slim, f"gpu_inputs/{name}.parquet", compression="zstd")
    print(name, len(slim), Path(f"gpu_inputs/{name}.parquet").stat().st_size / 1e6, "MB")
