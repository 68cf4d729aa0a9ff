"""Train the 30 x 512 MADE-MoG as device_reweighted.py does and save it for run.py --model, its weights file gzipped
and cut into parts that the size-limited transfer takes (at most 8 files of 16 MiB come back; the state dict is
62.3 MiB with the MADE masks, 29.2 MiB gzipped). Run by run3.sh on 2026-12-04 on `export.py 400000 0 float64`:
seed 2 best epoch 69, sha256 of the weights f55e7fd3..., seed 1 best epoch 67, b09109c7... (a first run on the float32
export, a9296a76..., put the m_lv = m_W spike at float32(m_W): see export.py).

    python3 train_and_save.py SEED EPOCHS OUTDIR [BLOCKS HIDDEN]
    # back on the CPU machine: cat OUTDIR/weights.safetensors.gz.part* | gunzip > MODEL/weights.safetensors
    # (config, metrics and preprocessing JSON beside it), then
    # run.py --n-background 400000 --n-signal 50000 --model MODEL --reweight
"""

import gzip
import hashlib
import sys
from pathlib import Path

import awkward as ak

from mcsurrogate.amplification import CONTINUOUS_FEATURES, paper_b_candidates, with_differences

PART_BYTES = 15 * 2**20

seed, epochs, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
blocks, hidden = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (30, 512)
train = ak.from_parquet("gpu_inputs/train.parquet")
(cand,) = paper_b_candidates(
    families=["made-mog"], preprocessings=["gauss-rank"], blocks=blocks, hidden=hidden, differences=["masses"]
)
training = {"epochs": epochs, "patience": 15, "batch_size": 1024, "seed": seed, "ema_decay": 0.999}
model = cand.surrogate(list(CONTINUOUS_FEATURES), training).fit(
    with_differences(train, cand.differences), progress=False
)
model.save(out, overwrite=True)
weights = out / "weights.safetensors"
raw = weights.read_bytes()
data = gzip.compress(raw, compresslevel=6)
for i in range(0, len(data), PART_BYTES):
    (out / f"weights.safetensors.gz.part{i // PART_BYTES:02d}").write_bytes(data[i : i + PART_BYTES])
weights.unlink()
print(
    f"saved {out}: best epoch {model.result.best_epoch}, {len(raw) / 2**20:.1f} MiB of weights, {len(data) / 2**20:.1f} MiB gzipped in parts"
)
print("sha256", hashlib.sha256(raw).hexdigest())
