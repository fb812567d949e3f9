#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no network there): the GPU tests, the epoch-time comparison and the
# CNN recipe. It expects, beside the repository (carried by the device tool):
#   .device_wheels/   jsonargparse, docstring-parser, typeshed-client, torchdata, pyyaml, lightning, torchmetrics,
#                     lightning-utilities, pytest, pluggy, iniconfig (pip download, see README "Performance")
#   .device_data/     the four Fashion-MNIST .gz files (e.g. from Debian's /usr/share/datasets/fashion-mnist)
# and writes its reports under $OUT (or ./gpu_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
# A venv over the machine's own torch stack; the carried wheels pin what this project was tested with.
if python3 -m venv --system-site-packages /tmp/fl-venv; then . /tmp/fl-venv/bin/activate; fi
python -m pip install -q --no-index --no-deps --find-links .device_wheels jsonargparse docstring-parser \
    typeshed-client torchdata pyyaml lightning==2.6.6 lightning-utilities torchmetrics pytest pluggy iniconfig \
    2>&1 | tail -3 || python3 -m pip install -q --break-system-packages --no-index --no-deps \
    --find-links .device_wheels jsonargparse docstring-parser typeshed-client torchdata lightning==2.6.6 \
    lightning-utilities torchmetrics pytest pluggy iniconfig 2>&1 | tail -3
command -v python >/dev/null || python() { python3 "$@"; }
export FASHION_MNIST_DIR=$PWD/.device_data PYTHONPATH=$PWD
python -c "import torch, lightning, torchmetrics; print(torch.__version__, lightning.__version__, torchmetrics.__version__, torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/versions.txt"
timeout 150 python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 240 python benchmarks/epoch_time.py --device cuda --epochs 4 --data-dir /tmp/fl-data 2>&1 | tail -12 | tee "$OUT/epoch_time_cuda.txt"
timeout 200 python benchmarks/accuracy.py --recipes cnn --device cuda --data-dir /tmp/fl-data 2>&1 | tail -8 | tee "$OUT/accuracy_cuda.txt"
