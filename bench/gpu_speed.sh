#!/usr/bin/env bash
# Training images/s on one GPU: the floor (GAP + Dense) vs MMDSR on ResNet-101 at
# 448 px, batch 32, bfloat16 mixed precision, XLA (the JAX backend always
# compiles with XLA). About 5 minutes on an H100. Usage: bench/gpu_speed.sh [OUT_DIR]
set -euo pipefail
out_dir=${1:-bench/results}
mkdir -p "$out_dir"
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
python3 bench/speed.py --configs resnet101@448 --heads floor mmdsr --modes train \
    --mixed-precision bfloat16 --batch-size 32 --warmup 2 --rounds 3 --steps 5 \
    --memory-heads floor mmdsr --json "$out_dir/gpu_speed-$(date +%Y%m%d-%H%M%S).json"
