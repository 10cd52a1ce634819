#!/usr/bin/env bash
# The GPU check of issue 14 (item 5), run on a machine with an NVIDIA GPU, CUDA and PyTorch
# but no Rust toolchain: SimCLR for 5 epochs on 100,000 simulated cells × 2,000 genes with
# scssl on the GPU, the same on the CPU (seeds 0 and 1, for the agreement's baseline), and the
# batched PyTorch loop (perf_train_batched.py) on the same GPU; then the agreement of the
# embeddings (cell-type silhouette, 15-NN overlap with the CPU seed-0 embedding).
#
#   cargo build --release -p scssl-bench --features cuda     # here, where Rust is
#   cp $CARGO_TARGET_DIR/release/scssl gpu-bin/ && strip gpu-bin/scssl
#   bash conformance/gpu_check.sh gpu-bin/scssl RESULTS_DIR [CELLS]   # there
#
# Each step's JSON line (with its wall time and peak memory) is appended to
# RESULTS_DIR/results.jsonl and the whole log goes to RESULTS_DIR/log.txt, so a run cut short
# still leaves what it finished.
set -uo pipefail
BIN=$1
RES=$2
CELLS=${3:-100000}
EPOCHS=${EPOCHS:-5}
mkdir -p "$RES"
WORK=$(mktemp -d)
exec > >(tee -a "$RES/log.txt") 2>&1
PY=$(command -v python3 || command -v python)
# the CUDA runtime compiler (NVRTC) that burn's CUDA backend loads at run time
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
# (not the toolkit's stubs/ folder: its libcuda.so is a stub that fails with
# CUDA_ERROR_STUB_LIBRARY; the driver's own folder goes first)
for d in $(find /usr/local /opt ${site:+"$site/nvidia"} -name 'libnvrtc.so*' -not -path '*/stubs/*' \
    -printf '%h\n' 2>/dev/null | sort -u) /usr/local/cuda/lib64 /usr/local/nvidia/lib64; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
stamp() { echo "== $(date +%T) $*"; }
step() { # step NAME COMMAND…: time it; its last stdout line (the JSON) goes to RES/results.jsonl
    local name=$1
    shift
    stamp "$name: $*"
    /usr/bin/time -f '{"wall_s": %e, "max_rss_kb": %M}' -o "$WORK/$name.time" "$@" \
        > "$WORK/$name.out" || echo "!! $name failed (exit $?)"
    local result time
    result=$(tail -n 1 "$WORK/$name.out")
    time=$(tail -n 1 "$WORK/$name.time" 2>/dev/null)
    echo "$result"
    echo "$time"
    case "$result" in
    "{"* | "["*) ;;
    *) result="\"${result//\"/\'}\"" ;;
    esac
    echo "{\"step\": \"$name\", \"result\": ${result:-null}, \"time\": ${time:-null}}" >> "$RES/results.jsonl"
}

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc
"$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
"$BIN" --version

step simulate "$BIN" simulate --cells "$CELLS" --genes 2000 --batches 3 --cell-types 8 \
    --seed 0 -o "$WORK/sim.h5ad"
step preprocess "$BIN" preprocess "$WORK/sim.h5ad" -o "$WORK/pp.h5ad" --n-hvg 2000
step export_x "$BIN" perf-step export-x "$WORK/pp.h5ad" "$WORK/x.f32"

step scssl_cuda "$BIN" perf-step train "$WORK/pp.h5ad" "$WORK/emb_cuda.f32" \
    --device cuda --epochs "$EPOCHS" --seed 0
[ -z "${SKIP_TORCH:-}" ] && step torch_cuda "$PY" conformance/perf_train_batched.py "$WORK/x.f32" simclr \
    --device cuda --epochs "$EPOCHS" --embed-out "$WORK/emb_torch.f32"
step scssl_cpu_s0 "$BIN" perf-step train "$WORK/pp.h5ad" "$WORK/emb_cpu0.f32" \
    --device cpu --epochs "$EPOCHS" --seed 0
embeddings=()
for e in emb_cpu0 emb_cuda emb_torch; do
    [ -f "$WORK/$e.f32" ] && embeddings+=("$WORK/$e.f32")
done
step agreement "$BIN" perf-step agreement "$WORK/pp.h5ad" "${embeddings[@]}"
if [ -z "${SKIP_SECOND_CPU_SEED:-}" ]; then
    step scssl_cpu_s1 "$BIN" perf-step train "$WORK/pp.h5ad" "$WORK/emb_cpu1.f32" \
        --device cpu --epochs "$EPOCHS" --seed 1
    step agreement_seeds "$BIN" perf-step agreement "$WORK/pp.h5ad" \
        "$WORK/emb_cpu0.f32" "$WORK/emb_cpu1.f32"
fi
stamp "done"
rm -rf "$WORK"
