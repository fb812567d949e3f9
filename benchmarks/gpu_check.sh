#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no network there): the GPU tests, the epoch-time comparison and the
# CNN recipe. It expects, beside the repository (carried by the device tool):
#   .device_wheels/   jsonargparse, docstring-parser, typeshed-client, torchdata (pip download --no-deps)
#   .device_data/     the four Fashion-MNIST .gz files (e.g. from Debian's /usr/share/datasets/fashion-mnist)
# and writes its reports under $OUT (or ./gpu_out). About 8 minutes on one H100 (at most ~9.5: each part has a timeout).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
# The machine's python3 has torch, lightning, torchmetrics, tensorboard, pillow (TensorBoard's pictures need 10.1+:
# versions.txt shows it); the rest travels as wheels.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .device_wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1

export FASHION_MNIST_DIR=$PWD/.device_data
python3 -c "import torch, lightning, torchmetrics, PIL; print(torch.__version__, lightning.__version__, torchmetrics.__version__, 'pillow', PIL.__version__, torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/versions.txt"
timeout 170 python3 -m pytest -q -p no:cacheprovider -m gpu --durations=6 tests/test_gpu.py 2>&1 | tail -40 | tee "$OUT/gpu_tests.txt"
# the seed loop (6-7 s an epoch there) is left out so that two rounds of the rest fit in the limit
timeout 230 python3 benchmarks/epoch_time.py --device cuda --epochs 3 --rounds 2 --only floor fit graph fit_k1 fit_eager --data-dir /tmp/fl-data 2>&1 | tail -24 | tee "$OUT/epoch_time_cuda.txt"
# the seed's test pass against fit's (target: fit faster on both devices); one epoch each, so the seed fits in time
timeout 45 python3 benchmarks/epoch_time.py --device cuda --epochs 1 --rounds 1 --only seed fit --data-dir /tmp/fl-data 2>&1 | tail -12 | tee "$OUT/test_pass_cuda.txt"
timeout 110 python3 benchmarks/accuracy.py --recipes cnn --device cuda --data-dir /tmp/fl-data 2>&1 | tail -8 | tee "$OUT/accuracy_cuda.txt"
