#!/usr/bin/env bash
# GFM on one GPU in under 10 minutes: pretraining step (the authors' step with fp16 autocast;
# this package in bf16 with timm's and the fused window attention, with activation
# checkpointing, and compiled with either attention), fine-tuning and inference.
# Needs only PyTorch and timm (see benchmarks/gpu_throughput.py). Usage: bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_throughput.py --batch "${BATCH:-128}" "$@"
