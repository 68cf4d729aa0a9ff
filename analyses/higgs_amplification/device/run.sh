#!/bin/bash
# Device run: paper B's final MADE-MoG size (30 blocks x 512) on the learning-curve recipe, ReLU and GELU side by side.
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, mcsurrogate.amplification; print('torch', torch.__version__, torch.cuda.is_available())" || exit 1
python3 gpu_inputs/probe.py 30 512 relu > /tmp/p1 2>&1 & python3 gpu_inputs/probe.py 30 512 gelu > /tmp/p2 2>&1 & wait
cat /tmp/p1 /tmp/p2
NOW=$(( $(date +%s) - T0 ))
# 141 steps per epoch (0.9 x 160k / 1024); keep ~130 s for start-up, NLL, generation and the C2ST after training
EPOCHS=$(python3 -c "s=max(float(open('/tmp/p1').read().split()[-1]), float(open('/tmp/p2').read().split()[-1])); print(max(5, min(800, int((${BUDGET:-575} - $NOW - 130) / (141 * s * 1.35)))))")
echo "elapsed ${NOW}s; epochs $EPOCHS"
for act in relu gelu; do
  timeout -s TERM $(( ${BUDGET:-575} - ($(date +%s) - T0) )) python3 gpu_inputs/device_learning_curve.py $act $EPOCHS $OUT/lc_$act \
    > $OUT/lc_$act.log 2>&1 &
done
wait
tail -n 3 $OUT/lc_*.log
echo "total $(( $(date +%s) - T0 ))s"
ls -R $OUT
