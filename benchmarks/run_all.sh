#!/usr/bin/env bash
# Run every benchmark in sequence, writing JSON under benchmarks/results/; stop at the first failure.
#
#   bash benchmarks/run_all.sh          # quick settings: about 6 minutes on 2 shared cores
#   BENCH_FULL=1 bash benchmarks/run_all.sh   # ssl_embedded and scale at their full defaults (about 15 minutes more, with the load)
#
# `make bench` installs the bench extra (SpikingJelly) and runs this with .venv/bin first on PATH.
# Then `python benchmarks/summarize.py --write` refreshes the table in benchmarks/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
RESULTS=benchmarks/results
mkdir -p "$RESULTS"
PY=${PYTHON:-python}
started=$SECONDS

run() {
    local name=$1
    shift
    echo "== $name: $*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "run_all: benchmark '$name' failed (exit $rc) after $((SECONDS - t0)) s; stopping." >&2
        echo "run_all: results of the benchmarks before it are in $RESULTS/" >&2
        exit "$rc"
    fi
    echo "== $name: done in $((SECONDS - t0)) s"
}

run data_throughput      "$PY" benchmarks/data_throughput.py --out "$RESULTS/data_throughput.json"
run energy               "$PY" benchmarks/energy.py --out "$RESULTS/energy.json"
run onnx_throughput      "$PY" benchmarks/onnx_throughput.py --out "$RESULTS/onnx_throughput.json"
run spikingjelly_compare "$PY" benchmarks/spikingjelly_compare.py --out "$RESULTS/spikingjelly_compare.json"
run lif_kernels          "$PY" benchmarks/lif_kernels.py --out "$RESULTS/lif_kernels.json"
run allocator            "$PY" benchmarks/allocator.py --out "$RESULTS/allocator.json"
run lava_throughput      "$PY" benchmarks/lava_throughput.py --out "$RESULTS/lava_throughput.json"
run fixed_point_speed    "$PY" benchmarks/fixed_point_speed.py --out "$RESULTS/fixed_point_speed.json"
if [ "${BENCH_FULL:-0}" = 1 ]; then
    run ssl_embedded     "$PY" benchmarks/ssl_embedded.py --out "$RESULTS/ssl_embedded.json"
else
    # a quick look (the full run's figures stay in ssl_embedded.json)
    run ssl_embedded_quick "$PY" benchmarks/ssl_embedded.py --pretrain-epochs 1 --finetune-epochs 3 \
        --linear-epochs 20 --runs runs/bench_ssl_embedded_quick --out "$RESULTS/ssl_embedded_quick.json"
fi
if [ "${BENCH_FULL:-0}" = 1 ]; then
    run scale            "$PY" benchmarks/scale.py --out "$RESULTS/scale.json"
else
    # cnn5-128 only, 8 samples, one round (the full run, both 128x128 models, is in scale.json)
    run scale_quick      "$PY" benchmarks/scale.py --models cnn5-128 --samples 8 --repeats 1 \
        --work runs/bench_scale_quick --out "$RESULTS/scale_quick.json"
fi
run summarize            "$PY" benchmarks/summarize.py
echo "run_all: all benchmarks done in $((SECONDS - started)) s; JSON in $RESULTS/"
