#!/bin/bash
# Second device command: device_reweighted.py for one seed (SEED=2 first, then SEED=1), 203 epochs as in run.sh.
T0=$(date +%s)
SEED=${SEED:-2}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
mkdir -p $OUT/rw_seed$SEED
timeout -s TERM $(( ${BUDGET:-450} - ($(date +%s) - T0) )) python3 gpu_inputs/device_reweighted.py $SEED 203 $OUT/rw_seed$SEED \
  > $OUT/rw_seed$SEED.log 2>&1
tail -n 4 $OUT/rw_seed$SEED.log
echo "total $(( $(date +%s) - T0 ))s"
