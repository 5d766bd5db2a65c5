#!/usr/bin/env bash
# The whole pipeline on the embedded offline dataset, from nothing to parity and energy reports:
#   data -> NeuroMoCo pre-training -> fine-tuning -> model.nir -> Lava (float, fixed) + ONNX (fp32, int8)
#   -> parity report -> energy report.
# Sized to finish in well under 15 minutes on a 2-core CPU. Every stage is a real CLI command a user
# can run on their own; the knobs below are environment variables.
#   DEMO_OUT           where everything goes (default runs/demo)
#   DEMO_T             time steps per sample (default 8)
#   DEMO_PRE_EPOCHS    NeuroMoCo pre-training epochs (default 4)
#   DEMO_FT_EPOCHS     fine-tuning epochs (default 6)
#   DEMO_MODEL         the deployable model (default cnn3-34; `train models` lists them)
#   DEMO_QAT           quantization-aware fine-tuning onto the Loihi 2 grid: loihi (default; none for
#                      sew-resnet18-128, whose stem pools between a conv and its neuron layer)
#                      or none
#   DEMO_KEEP=1        also copy the trained graph and card into nir_models/ (for hardware_tests/)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${DEMO_OUT:-runs/demo}
T=${DEMO_T:-8}
PRE_EPOCHS=${DEMO_PRE_EPOCHS:-4}
FT_EPOCHS=${DEMO_FT_EPOCHS:-6}
MODEL=${DEMO_MODEL:-cnn3-34}
# QAT covers chain and residual models, not a pooling between a conv and its neuron (sew-resnet18-128's stem)
case "$MODEL" in sew-resnet18-128) QAT=${DEMO_QAT:-none} ;; *) QAT=${DEMO_QAT:-loihi} ;; esac
mkdir -p "$OUT"
start=$(date +%s)
resume() { [ -f "$1/last.pt" ] && echo --resume || true; }  # an interrupted demo picks up where it stopped
stage() { printf '\n== [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

stage "1/7 data: build the embedded dataset (sklearn digits through an event-camera simulation) and render samples"
train data --build
train data --render embedded --out "$OUT/samples" --n 3 --time-steps "$T"

stage "2/7 NeuroMoCo pre-training ($PRE_EPOCHS epochs, labels unused)"
train pretrain --dataset embedded --model "$MODEL" --time-steps "$T" --epochs "$PRE_EPOCHS" \
  --batch-size 64 --queue-size 1024 --momentum 0.99 --out "$OUT/pretrain" $(resume "$OUT/pretrain")

stage "3/7 fine-tuning on all labels ($FT_EPOCHS epochs, --qat $QAT); writes model.nir + model_card.json"
# --qat loihi trains onto the weight grid of the Loihi 2 fixed-point plan, so lava-fixed loses ~nothing
train finetune --pretrained "$OUT/pretrain/last.pt" --dataset embedded --time-steps "$T" \
  --epochs "$FT_EPOCHS" --label-fraction 1.0 --qat "$QAT" --out "$OUT/finetune" $(resume "$OUT/finetune")
NIR="$OUT/finetune/model.nir"
deploy inspect "$NIR"

stage "4/7 deploy export: Lava (float, fixed point) and ONNX (fp32 + int8 calibrated on real samples)"
deploy export "$NIR" --target lava --precision float --out "$OUT/lava-float"
deploy export "$NIR" --target lava --precision fixed --out "$OUT/lava-fixed"
deploy export "$NIR" --target onnx --int8 --dataset embedded --out "$OUT/onnx"

stage "5/7 deploy run on the Lava simulator (fixed point) over the test split"
deploy run "$NIR" --target lava-fixed --dataset embedded --out "$OUT/run-lava-fixed"

stage "6/7 parity of every target against the PyTorch reference (train + test splits: 1,797 samples)"
# lava-float and lava-fixed must equal their emulators on a subset (exactness); the quantized targets are judged
# on every sample (quantization loss: reference-fixed and onnx-int8 against the float reference).
# onnx fp32 is held to the tolerances here, not to equality: onnxruntime may sum a convolution in another order
# than PyTorch, and over 1,797 samples a membrane within one float32 ULP of the threshold can flip a spike (seen:
# one spike in one sample); its mismatched spikes are still reported (docs/limits.md, "ONNX").
# exit 1 means a target is outside the tolerances: the report says where, so the demo goes on to show it
# and exits 1 at the end; any other failure stops the demo
parity_rc=0
deploy parity "$NIR" --targets lava-float,lava-fixed,onnx,onnx-int8 --dataset embedded --split train,test \
  --exact-targets lava,lava-float,reference --out "$OUT/parity" || parity_rc=$?
[ "$parity_rc" -le 1 ] || exit "$parity_rc"

stage "7/7 energy per inference from spike counts"
deploy profile "$NIR" --target lava-fixed --dataset embedded --out "$OUT/energy"

if [ "${DEMO_KEEP:-0}" = "1" ]; then
  cp "$NIR" nir_models/neuromoco_embedded_cnn3.nir
  cp "$OUT/finetune/model_card.json" nir_models/neuromoco_embedded_cnn3.card.json
  echo "kept the trained graph in nir_models/neuromoco_embedded_cnn3.nir"
fi

stage "done"
cat <<EOF
Reports:
  samples       $OUT/samples/
  training      $OUT/pretrain/metrics.jsonl, $OUT/finetune/metrics.jsonl (TensorBoard: $OUT/*/tb)
  model         $NIR (+ model_card.json)
  parity        $OUT/parity/report.md   ($OUT/parity/parity.json)
  energy        $OUT/energy/energy.md   ($OUT/energy/energy.json)
EOF
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
par = json.load(open(f"{out}/parity/parity.json"))
print("\nHeadline figures (train + test splits)")
for name, t in par["targets"].items():
    m = t.get("metrics", {})
    if "agreement" in m:
        worst = max(l["rel_diff"] for l in m["layers"].values())
        print(f"  {name:15s} {t['status']:5s} accuracy {m['accuracy_target']:.4f} (reference "
              f"{m['accuracy_reference']:.4f})  agreement {m['agreement']:.4f}  worst layer spike diff {worst:.4f}")
    else:
        print(f"  {name:15s} {t.get('status')}: {t.get('error', '')}")
en = json.load(open(f"{out}/energy/energy.json"))
for model, e in en["energy_pj"].items():
    ann = f", same network as an ANN {e['ann_pj'] / 1e6:.2f} uJ" if e.get("ann_pj") else ""
    print(f"  energy/inference ({model}): SNN {e['snn_pj'] / 1e6:.2f} uJ{ann}")
PY
if [ "$parity_rc" = 1 ]; then
  echo
  echo "Note: a quantized target fell outside the default parity tolerances on this freshly trained model"
  echo "(see $OUT/parity/report.md for the layers and time steps where it diverges). \`deploy parity\` exits 1"
  echo "in that case so it can gate a CI job; the demo exits 1 for the same reason."
fi
exit "$parity_rc"
