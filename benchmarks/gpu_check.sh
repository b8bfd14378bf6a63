#!/usr/bin/env bash
# The GPU checks of the packed engine in ONE command (about 5-7 minutes on one H100/H200):
#   1. correctness on CUDA: bf16 packed (every attention backend available) vs bf16 padded vs an
#      fp32 reference, CUDA-graph decoding vs eager, compiled vs eager elementwise ops
#      (tests/test_engine_gpu.py), and the verdict-head kernel tests (tests/test_scoring_head.py);
#   2. the throughput benchmark on the 7B random Llama (judgelm rows and the HF peers, same run);
#      plus prefill-only ablations on the same model: SDPA backend, no torch.compile, no pruning.
# Everything lands under $OUT (JSON + logs); the tables are printed last.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/judgelm-gpu}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.max.sm --format=csv >"$OUT/gpu.txt" 2>&1
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/versions.txt"

timeout 170 python -m pytest tests/test_engine_gpu.py tests/test_scoring_head.py -m gpu -q -rs -s -p no:cacheprovider \
  >"$OUT/gpu_tests.txt" 2>&1
echo "gpu tests exit $?" | tee -a "$OUT/gpu_tests.txt"

timeout 360 python benchmarks/throughput.py --model llama-7b-random --device cuda \
  --json "$OUT/throughput.json" >"$OUT/throughput.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/throughput.txt"

grep -E "passed|failed|error|rel err" "$OUT/gpu_tests.txt" | tail -20
tail -25 "$OUT/throughput.txt"
