#!/usr/bin/env bash
# Multimodal batch correction on ../shared/data/bmmc_cite_neurips2021_starter.h5ad (600 cells,
# 1,000 genes, 134 proteins, 2 batches): every multimodal method trained with `scssl train`
# (its reference's training defaults, except where the default is GPU-class: scTEL 64 wide
# instead of 512, at most 200 epochs; scCLIP a 2-layer, 64-wide ViT for 30 epochs with 10
# warm-up steps instead of 6 × 256 for 100 epochs with 2,000), embedded into obsm, and scored
# with `scssl eval` (the scIB metric set, as scib-metrics computes it). Writes
# $OUT/bmmc_multimodal.csv.
#
#   bash conformance/multimodal_bmmc.sh [OUT]     # uses target/release/scssl or $SCSSL
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${BMMC:-$root/../shared/data/bmmc_cite_neurips2021_starter.h5ad}
out=${1:-$root/target/bmmc_multimodal}
scssl=${SCSSL:-${CARGO_TARGET_DIR:-$root/target}/release/scssl}
[ -f "$data" ] || { echo "no $data: the shared datasets are not here" >&2; exit 1; }
mkdir -p "$out"
work="$out/bmmc.h5ad"
cp "$data" "$work"
chmod u+w "$work"
declare -A extra=(
  [simclr]=""
  [vicreg]=""
  [totalvi]=""
  [concerto]=""
  [scclip]="--set model.scclip.hidden_size=64 --set model.scclip.num_layers=2 --set model.scclip.num_heads=4 --set model.scclip.intermediate_size=128 --epochs 30 --schedule warmup_cosine:10"
  [scbutterfly]=""
  [sctel]="--set model.sctel.h_size=64 --epochs 200"
)
embeddings=()
for m in simclr vicreg totalvi concerto scclip scbutterfly sctel; do
  if ! "$scssl" train --help | grep -q "^ *$m:"; then
    echo "skipping $m: not in this build" >&2
    continue
  fi
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$scssl" train "$work" --method "$m" --protein-key protein_expression --seed 0 \
    ${extra[$m]} -o "$out/model_$m" 2>>"$out/log.txt" | tail -1
  "$scssl" embed "$work" --model "$out/model_$m" --key "X_$m" 2>>"$out/log.txt" | tail -1
  echo "$m: $(( $(date +%s) - start )) s"
  embeddings+=(--embedding "X_$m")
done
"$scssl" eval "$work" "${embeddings[@]}" --batch-key batch --label-key cell_type \
  --csv "$out/bmmc_multimodal.csv" 2>>"$out/log.txt"
cat "$out/bmmc_multimodal.csv"
