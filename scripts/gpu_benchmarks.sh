#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one run, each part under a time limit, all within 8 minutes:
#
#   bash scripts/gpu_benchmarks.sh OUT_DIR               # on a GPU machine, paper geometry
#   bash scripts/gpu_benchmarks.sh OUT_DIR --cpu-smoke   # the same parts at tiny geometry on a CPU
#
# Parts, in order: the GPU tests (pytest -m gpu), generation (ours vs plain transformers, batch 1 and
# 32, 128 tokens), the training-step sweep (micro-batch 1, 4, 8, 16, activation checkpointing on and
# off), then generation with compiled decoding in the time that is left. Each writes OUT_DIR/<part>.log
# and, for the benchmarks, OUT_DIR/<part>.json (written as measurements come in, so a part stopped by
# its limit keeps what it measured); OUT_DIR/parts.tsv lists every part's exit status (124: stopped
# by its limit) and seconds. Wheels in $REG2RG_WHEELS (default: .whl) are installed first, without
# their dependencies, into a temporary folder put on PYTHONPATH (nothing is installed system-wide).
set -uo pipefail

out=${1:?usage: bash scripts/gpu_benchmarks.sh OUT_DIR [--cpu-smoke]}
mode=${2:-gpu}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python}
: > "$out/parts.tsv"

if [ "$mode" = --cpu-smoke ]; then
  geometry=tiny; tokens=16; deadline=1800; limit_tests=300; limit_generate=300; limit_sweep=900
else
  geometry=paper; tokens=128; deadline=470; limit_tests=100; limit_generate=130; limit_sweep=150
fi

# part NAME LIMIT COMMAND...: run COMMAND with its output in NAME.log, stopped after LIMIT seconds or
# at the deadline, whichever comes first.
part() {
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  if [ "$limit" -lt 20 ]; then
    printf '%s\tskipped\t0\n' "$name" | tee -a "$out/parts.tsv"
    return
  fi
  echo "== $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  status=$?
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" | tee -a "$out/parts.tsv"
}

wheels=${REG2RG_WHEELS:-.whl}
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if [ "$mode" != --cpu-smoke ] && compgen -G "$wheels/*.whl" > /dev/null; then
  part wheels 60 "$python" -m pip install --no-index --no-deps --no-compile --quiet --target "$site" "$wheels"/*.whl
fi
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

part environment 30 "$python" -c '
import json, sys, torch, transformers, peft, accelerate
versions = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "transformers": transformers.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__}
open(sys.argv[1], "w").write(json.dumps(versions, indent=2) + "\n")' "$out/environment.json"

part tests "$limit_tests" "$python" -m pytest -m gpu tests/test_gpu.py -q -o addopts=-ra -p no:cacheprovider \
  --junitxml="$out/tests.xml"
part generate "$limit_generate" "$python" scripts/benchmark.py generate --geometry "$geometry" \
  --batch-sizes 1 32 --new-tokens "$tokens" --json "$out/generate.json"
part step_sweep "$limit_sweep" "$python" scripts/benchmark.py step-sweep --geometry "$geometry" \
  --micro-batches 1 4 8 16 --json "$out/step_sweep.json"
part generate_compiled "$deadline" "$python" scripts/benchmark.py generate --geometry "$geometry" \
  --batch-sizes 1 --new-tokens "$tokens" --compile --json "$out/generate_compiled.json"

echo "== done in $SECONDS s: $out"
cat "$out/parts.tsv"
