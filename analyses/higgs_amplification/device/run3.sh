#!/bin/bash
# Third device command: train the 30 x 512 MADE-MoG (SEED=2 by default, SEED=1 too; the learning-curve recipe) on
# gpu_inputs/train.parquet from `export.py 400000 0 float64` and save it in parts for run.py --model.
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
set -o pipefail
python3 gpu_inputs/train_and_save.py ${SEED:-2} 203 $OUT/model 2>&1 | tee /tmp/train_and_save.log  # $OUT takes 8 files: the model's 3 JSON + 2 parts
echo "total $(( $(date +%s) - T0 ))s"
ls -la $OUT/model
