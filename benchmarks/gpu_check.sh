#!/usr/bin/env bash
# One prepared check of every CUDA path, for the minutes a GPU is available (under 7 on one H100):
#
#   bash benchmarks/gpu_check.sh            # from the repository root, or from anywhere
#
# 1. the machine: GPU, driver, torch / CUDA / cuDNN / NCCL versions, the precision `auto` picks;
# 2. `pytest -m cuda -v`: resume after an interrupt (bf16, fp16), autocast dtype and fused AdamW,
#    channels_last CNN, ViLT's fused attention kernels (math backend excluded) against the explicit
#    path, torch.compile without recompiles, NCCL DDP on one rank (two with >= 2 GPUs), no host
#    sync inside a training step, loader workers + pinned memory + the image cache, batch
#    augmentation GPU = CPU;
# 3. benchmarks/train_step.py: ViT-B/16, 128 px, the chosen precision, batch 512 (fills the
#    GPU's compute), MFU against the measured and the datasheet peak; then end-to-end training
#    images/s from image files and from the decoded-image cache, augmentation in the loader (PIL)
#    or on the GPU (batch), beside the model-only figure.
#
# Without a GPU it says so and exits with status 2. Exit status: 0 when the tests and the
# benchmark succeeded, 1 otherwise. Environment: PYTHON (default .venv/bin/python, else python),
# GPU_CHECK_BATCH (default 512).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
BATCH=${GPU_CHECK_BATCH:-512}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no NVIDIA GPU here (torch.cuda.is_available() is False); nothing was checked." >&2
    exit 2
fi

echo "== the machine"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "(nvidia-smi not found)"
"$PYTHON" - <<'EOF'
import torch
from animesion_lib.device import select_precision

device = torch.device("cuda")
print(f"GPU: {torch.cuda.get_device_name(device)} x {torch.cuda.device_count()}, "
      f"compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}")
print(f"precision auto -> {select_precision(device)} "
      f"(native bf16: {torch.cuda.is_bf16_supported(including_emulation=False)})")
EOF

echo
echo "== pytest -m cuda"
timeout 300 "$PYTHON" -m pytest -m cuda -v -p no:cacheprovider tests/
tests_status=$?

echo
echo "== speed: ViT-B/16 @128, batch $BATCH; end to end from a synthetic set at 128 px"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$PYTHON" -m animesion_lib.cli make-synthetic --out "$data/synthetic" --profile smoke --size 128 \
    --images 3000 --workers 8 --no-card --quiet
timeout 240 "$PYTHON" benchmarks/train_step.py --device cuda --models vit_b16 --batch "$BATCH" --steps 20 \
    --data "$data/synthetic" --e2e-model vit_b16 --e2e-size 128 --e2e-batch "$BATCH" --e2e-steps 20
bench_status=$?

echo
echo "gpu_check: pytest exit $tests_status, benchmark exit $bench_status, $(( $(date +%s) - started )) s in all"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
