#!/usr/bin/env bash
# GPU timing of the LIF implementations at the paper's Spikformer shape (T=16, batch 16, 2x128x128):
# the project's Norse loop, fused op and Triton kernels, and SpikingJelly 2.0's Triton and torch paths
# (SJ_LIF_CUDA_IMPLEMENTATION, read at import: one process each). Writes one JSON; under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_kernels.sh            # on a CUDA machine: benchmarks/results/gpu_kernels.json
#   bash benchmarks/gpu_kernels.sh --dry-run  # on the CPU, tiny shapes, Triton interpreted: checks the script
#
# OUT (default benchmarks/results) is where the JSON goes; PYTHON picks the interpreter (default: .venv's, else
# python3). SpikingJelly comes from benchmarks/.deps (make bench); without it its rows say "skipped".
set -euo pipefail

cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PARTS=$(mktemp -d)
trap 'rm -rf "$PARTS"' EXIT

ARGS=()
NAME=gpu_kernels
SCALE=1  # the parts' time limits below add up to 470 s: with the merge, under 8 minutes
if [ "${1:-}" = "--dry-run" ]; then
    ARGS=(--device cpu --dry-run)
    NAME=gpu_kernels_dry_run
    SCALE=2  # the interpreter and the CPU are slower than their share of a GPU run
    export TRITON_INTERPRET=1  # Triton's interpreter runs the kernels on the CPU
elif [ -n "${1:-}" ]; then
    echo "usage: bash benchmarks/gpu_kernels.sh [--dry-run]" >&2
    exit 2
fi

part() {  # part NAME LIMIT_S ENV... -- ARGS...: one process; a timeout or failure is recorded, not fatal
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local rc=0
    env "${envs[@]}" timeout "$limit" "$PY" benchmarks/gpu_kernels.py "${ARGS[@]}" "$@" --out "$PARTS/$name.json" \
        || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "gpu_kernels: part $name failed (exit $rc)" >&2
        printf '{"benchmark": "gpu_kernels", "command": "part %s", "rows": {"%s": {"error": "exit %s"}}}\n' \
            "$name" "$name" "$rc" > "$PARTS/$name.json"
    fi
}

# one process per row, so a row that runs out of time or memory costs only itself
part norse 150 -- --rows norse
part fused 80 -- --rows fused
part triton 80 -- --rows triton
part sj_triton 80 SJ_LIF_CUDA_IMPLEMENTATION=triton -- --rows sj --label triton
part sj_torch 80 SJ_LIF_CUDA_IMPLEMENTATION=torch -- --rows sj --label torch
"$PY" benchmarks/gpu_kernels.py --merge "$PARTS"/{norse,fused,triton,sj_triton,sj_torch}.json --out "$OUT/$NAME.json"
