#!/usr/bin/env bash
# Everything a lent GPU machine checks, in one call of the device tool (read
# /work/.library/device/README.md where that tool exists). Build prmh's wheel first, here:
#
#   rm -rf .whl && .venv/bin/pip wheel -q --no-deps --no-build-isolation -w .whl .
#
# then run `bash benchmarks/on_gpu.sh` there with `.whl` carried. It installs the wheel beside
# the machine's own torch and transformers, runs the CUDA tests (tests/test_cuda.py and the
# generators' cuda cases), a bare `prmh eval` (the tiny world stays on the CPU: its tables
# should be the README's), a beam and beam-IAS eval on the GPU, and benchmarks/gpu.py in real model
# shapes (with --profile: torch.profiler's busiest operators). Each step has its own time
# limit; logs, results.json and the profiles land in $OUT (8 files, the most that come back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/prmh-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PRMH_RESULTS_DIR=/tmp/prmh-results
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/prmh-*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm --format=csv
python3 -c 'import torch, transformers as t; print("torch", torch.__version__, "transformers", t.__version__)'
df -h /tmp | tail -1
step() {  # step SECONDS NAME COMMAND...: run with a time limit, log to $OUT/NAME.log
    local limit=$1 name=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    local began=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -n "${TAIL:-25}"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - began)) s"
}
step "${TESTS_S:-120}" tests python3 -m pytest -q -p no:cacheprovider -k cuda \
    tests/test_cuda.py tests/test_generators.py
step "${GPU_S:-300}" gpu python3 benchmarks/gpu.py --out "$OUT" ${GPU_ARGS:---profile}
TAIL=40 step "${EVAL_S:-70}" eval prmh eval
step "${EVAL_S:-70}" eval-cuda prmh eval --limit 20 --search beam --search beam-ias \
    -G device=cuda -P device=cuda
