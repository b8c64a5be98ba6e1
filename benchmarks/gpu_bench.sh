#!/usr/bin/env bash
# On a machine with a CUDA GPU, from the project root: the GPU tests, DALI's CPU against "mixed"
# (nvJPEG) decoding, and `triton-vision bench --ensemble classification` with the local server on
# the GPU (DALI mixed, ONNX Runtime CUDA where onnxruntime-gpu is installed) against the peer with
# OpenCV + ONNX Runtime CUDA. Writes everything under docs/bench/gpu/ (or $OUT).
#
#   benchmarks/gpu_bench.sh                  # PYTHON=.venv/bin/python OUT=docs/bench/gpu DURATION=4
#
# It stops at the first step that cannot run and says why (no GPU, no CUDA provider); every step's
# output is kept in $OUT/gpu-bench.log.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
TV=${TV:-$(dirname "$PYTHON")/triton-vision}
OUT=${OUT:-docs/bench/gpu}
DURATION=${DURATION:-4}
DATA=${TRITON_VISION_DATA:-../shared}
mkdir -p "$OUT"
LOG="$OUT/gpu-bench.log"
: >"$LOG"
say() { echo "gpu_bench: $*" | tee -a "$LOG" >&2; }

say "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1; then
    say "no NVIDIA GPU here (nvidia-smi failed): nothing to measure"
    exit 1
fi
providers=$("$PYTHON" -c 'import onnxruntime as o; print(",".join(o.get_available_providers()))')
say "onnxruntime providers: $providers"
peer_device=cpu
if [[ $providers == *CUDAExecutionProvider* ]]; then
    peer_device=cuda
else
    say "no CUDAExecutionProvider (install onnxruntime-gpu for ORT CUDA): the model runs on the CPU on both sides"
fi

say "1/3 the GPU tests (tests/gpu)"
if ! "$PYTHON" -m pytest -q tests/gpu -p no:cacheprovider >>"$LOG" 2>&1; then
    say "the GPU tests failed (their output is in $LOG); measuring anyway"
fi
tail -1 "$LOG" >&2

say "2/3 DALI CPU against mixed (nvJPEG) decoding"
"$PYTHON" -m benchmarks.gpu_preprocess 2>&1 | tee "$OUT/gpu-preprocess.txt" | tee -a "$LOG"

photos=()
[[ -d $DATA/images ]] && photos=(--photos "$DATA/images")
say "3/3 triton-vision bench --ensemble classification (the peer: OpenCV + ONNX Runtime on $peer_device)"
"$TV" bench --ensemble classification "${photos[@]}" --duration "$DURATION" \
    --concurrency 1,2,4,8,16,32 --peer-device "$peer_device" --out "$OUT" \
    --note "GPU run: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); ORT providers $providers" \
    2>>"$LOG" | tee -a "$LOG"
say "wrote $OUT/bench-classification.md, .json, .png and $LOG"
