#!/usr/bin/env bash
# The tiny world, from a fixed seed, on CPU: see recipes/tiny/README.md.
# Usage: recipes/tiny/build.sh [WORK_DIR]   (default: tiny-world); a finished stage is skipped.
set -euo pipefail
W=${1:-tiny-world}
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 PRMH_RESULTS_DIR="$W/results"
mkdir -p "$W"
stage() { echo "== $(date +%T) $1"; }

if [ ! -f "$W/base/config.json" ]; then
  stage "base model and tokenizer"
  "$PY" "$(dirname "$0")/make_base.py" "$W/base"
fi
if [ ! -f "$W/generator/model.safetensors" ]; then
  stage "generator: 6 epochs on the 10,000 train solutions"
  prmh train-generator -T split=train --model "$W/base" --out "$W/generator" --full \
    --epochs 6 --lr 3e-3 --batch-size 32 --max-length 256
  rm -f "$W/generator/checkpoint.pt"
fi
if [ ! -f "$W/verifier-lm/model.safetensors" ]; then
  stage "verifier LM: the generator trained 4 more epochs (the PRM's policy model)"
  prmh train-generator -T split=train --model "$W/generator" --out "$W/verifier-lm" --full \
    --epochs 4 --lr 1e-3 --batch-size 32 --max-length 256
  rm -f "$W/verifier-lm/checkpoint.pt"
fi

# The generator's own layout: the arith prompt, then the steps separated by blank lines.
QUERY='Solve the problem step by step. Write each step as its own paragraph and finish with "The answer is N."\n\nProblem: {question}\n\nSolution:\n'
SAMPLE=(-T split=train --limit 60 -n 4 --generator hf -G "model=$W/generator"
        -G max_new_tokens=160 -G batch_size=64)
if [ ! -f "$W/rollouts.jsonl" ]; then
  stage "rollouts: 60 train problems x 4 solutions, 8 continuations of every step prefix"
  prmh rollout "${SAMPLE[@]}" -k 8 --out "$W/rollouts.jsonl"
fi
if [ ! -f "$W/labels.jsonl" ]; then
  stage "labels: Math-Shepherd hard labels from the same rollouts (read from the store)"
  prmh label "${SAMPLE[@]}" --labeler mc-hard -L n=8 --out "$W/labels.jsonl"
fi
if [ ! -f "$W/prm/prmh_prm.json" ]; then
  stage "PRM: implicit (verifier LM against the generator), its scale fitted on the labels"
  prmh train --head implicit --model "$W/verifier-lm" --reference "$W/generator" \
    --freeze-backbone --beta 0.5 --query-template "$QUERY" --joiner '\n\n' \
    --data "$W/labels.jsonl" --out "$W/prm" --epochs 4 --lr 0.05 --batch-size 16
  rm -f "$W/prm/checkpoint.pt"
fi
if [ ! -f "$W/prm-calibrated/prmh_prm.json" ]; then
  stage "calibration: quantiles 0.1/0.5/0.9 of the rollout success rates"
  prmh calibrate --rollouts "$W/rollouts.jsonl" --prm "$W/prm" --out "$W/prm-calibrated" \
    --epochs 4 --lr 0.05 --batch-size 16
  rm -f "$W/prm-calibrated/checkpoint.pt"
fi
stage "ship into the package"
"$PY" "$(dirname "$0")/ship.py" "$W" "${DEST:-$(dirname "$0")/../../plugins/tiny_world}"
stage "done"
