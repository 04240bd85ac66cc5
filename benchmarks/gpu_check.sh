#!/usr/bin/env bash
# The GPU check: one script, about six minutes on an H100/H200, run from the project root.
#
#   bash ../shared/gpu/prepare.sh optuna-dashboard==0.21.0 bottle==0.13.4   # here, before sending .carry/
#   source .carry/setup.sh && bash benchmarks/gpu_check.sh                   # there (sources it itself if needed)
#
# 1. the environment: nvidia-smi, Python, torch, CPU;
# 2. training throughput of the baseline pipeline, ours, and ours through torch.compile
#    (benchmarks/throughput.py --compile) at 128 px, batch 256;
# 2b. what each model costs: training images/s of ResNet-18, -34 and -50 through our step at the same
#    size and batch (benchmarks/model_speed.py), for the model factor study (studies/factor_model.toml);
# 3. torch-optimizer's Ranger against ours per step (benchmarks/optimizer_step.py), and the host-device
#    synchronisations inside our training steps (gpu_check.py syncs);
# 4. a search of about four minutes on real Imagenette ($IMAGENETTE_DIR): studies/imagenette.toml with
#    20-epoch trials, its asha pruner and [study] timeout_minutes = 4 (`python3 -m search run`);
# 5. a short table last. $OUT (default ./gpu_check_out) gets gpu_check.log, throughput.json,
#    models.json, optimizer_step.txt, syncs.json, the study file, its SQLite database gpu_check.db and summary.json.
#
# Settings (environment): GPU_CHECK_DEVICE (cuda), GPU_CHECK_IMAGE_SIZE (128), GPU_CHECK_BATCH (256),
# GPU_CHECK_STEPS (100), GPU_CHECK_REPEATS (3), GPU_CHECK_MODELS (resnet18,resnet34,resnet50), GPU_CHECK_COMPILE (1; 0 skips the compiled pipeline), GPU_CHECK_SEARCH_MINUTES (4), GPU_CHECK_EPOCHS (20),
# GPU_CHECK_PER_CLASS (all images), GPU_CHECK_WORKERS (one per GPU; more than one on this SQLite file can
# hand the queued warm-start trial to two workers, see RESULTS.md), PYTHON (.venv/bin/python or python3).
# Optional steps, run after the summary, each skipped while its variable is unset:
# GPU_CHECK_PACKING_MINUTES: minutes per arm of benchmarks/packing.py: K = 1, 4 and 8 trials on GPU 0,
#   fused in one worker (--trials-per-worker K) and as K workers (--workers-per-gpu K), five arms of
#   2-epoch trials at $size px, batch 64, to $OUT/packing.json; 0.2 takes about two minutes in all;
# GPU_CHECK_WORKERS_PER_GPU_MINUTES: minutes per setting of 1 and 2 workers per GPU (5-epoch trials,
#   batch 64; benchmarks/packing.py --arms processes) to $OUT/workers_per_gpu.json.
# On a CPU, end to end in two to three minutes:
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_IMAGE_SIZE=32 GPU_CHECK_BATCH=64 GPU_CHECK_STEPS=5 GPU_CHECK_REPEATS=2 \
#   GPU_CHECK_SEARCH_MINUTES=1 GPU_CHECK_EPOCHS=2 GPU_CHECK_PER_CLASS=50 \
#   IMAGENETTE_DIR=../shared/data/imagenette2-128.tar.gz bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

device=${GPU_CHECK_DEVICE:-cuda}
size=${GPU_CHECK_IMAGE_SIZE:-128}
batch=${GPU_CHECK_BATCH:-256}
steps=${GPU_CHECK_STEPS:-100}
repeats=${GPU_CHECK_REPEATS:-3}
minutes=${GPU_CHECK_SEARCH_MINUTES:-4}
epochs=${GPU_CHECK_EPOCHS:-20}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-./gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# Caches and checkpoints are large: kept out of $OUT, which travels back.
export HPSEARCH_CACHE_DIR=${HPSEARCH_CACHE_DIR:-/tmp/hpsearch-cache}
export HPSEARCH_CHECKPOINTS=${HPSEARCH_CHECKPOINTS:-/tmp/hpsearch-checkpoints}
exec > >(tee "$OUT/gpu_check.log") 2>&1
log_writer=$!
# $OUT travels back once this script exits: close our end and give tee up to 5 s to write the last
# lines (on a failure, the error itself); bounded, in case a stray child still holds the pipe
trap 'exec >&- 2>&-; for _ in {1..50}; do kill -0 "$log_writer" 2>/dev/null || break; sleep 0.1; done' EXIT

if [ -z "${IMAGENETTE_DIR:-}" ] && [ -f .carry/setup.sh ]; then
    source .carry/setup.sh
fi
: "${IMAGENETTE_DIR:?set IMAGENETTE_DIR to an Imagenette folder or .tar.gz (or source .carry/setup.sh)}"

echo "== environment ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
else
    echo "no nvidia-smi"
fi
"$PYTHON" -c "import platform, torch, torchvision, optuna; print('python', platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'optuna', optuna.__version__, 'cuda', torch.cuda.is_available())"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(uptime | sed 's/.*load/load/')"

echo "== throughput: baseline and ours, $size px, batch $batch ($SECONDS s in)"
"$PYTHON" -m benchmarks.throughput --device "$device" --data "$IMAGENETTE_DIR" --image-size "$size" \
    --batch-size "$batch" --steps "$steps" --repeats "$repeats" --json "$OUT/throughput.json" \
    $( [ "${GPU_CHECK_COMPILE:-1}" = 1 ] && echo --compile )

echo "== models: training images/s per model, $size px, batch $batch ($SECONDS s in)"
"$PYTHON" -m benchmarks.model_speed --device "$device" --image-size "$size" --batch-size "$batch" \
    --steps "$steps" --repeats "$repeats" --models "${GPU_CHECK_MODELS:-resnet18,resnet34,resnet50}" \
    --json "$OUT/models.json"

echo "== Ranger per step: torch-optimizer's against ours; host waits in a training step ($SECONDS s in)"
"$PYTHON" -m benchmarks.optimizer_step --device "$device" --image-sizes "$size" --batch-size "$batch" \
    --rounds 3 | tee "$OUT/optimizer_step.txt"
"$PYTHON" -m benchmarks.gpu_check syncs --device "$device" --image-size "$size" --batch-size "$batch" \
    --json "$OUT/syncs.json"

echo "== search: $minutes minutes, $epochs-epoch trials, $size px ($SECONDS s in)"
study="$OUT/gpu_check_study.toml"
storage="sqlite:///$OUT/gpu_check.db"
rm -f "$OUT"/gpu_check.db*  # a fresh study each run
"$PYTHON" -m benchmarks.gpu_check study "$study" --data "$IMAGENETTE_DIR" --image-size "$size" --epochs "$epochs" \
    --minutes "$minutes" ${GPU_CHECK_PER_CLASS:+--per-class "$GPU_CHECK_PER_CLASS"}
if "$PYTHON" -m search --help >/dev/null 2>"$OUT/cli_error.txt"; then
    rm -f "$OUT/cli_error.txt"
    "$PYTHON" -m search run "$study" --storage "$storage" --device "$device" --no-progress \
        ${GPU_CHECK_WORKERS:+--workers "$GPU_CHECK_WORKERS"}
else
    echo "python3 -m search cannot start here ($(tail -n 1 "$OUT/cli_error.txt")); carry its missing" \
         "packages (prepare.sh optuna-dashboard==0.21.0 bottle==0.13.4). Running the search through the API."
    "$PYTHON" -m benchmarks.gpu_check search "$study" --storage "$storage" --device "$device"
fi

echo "== summary ($SECONDS s in)"
"$PYTHON" -m benchmarks.gpu_check summary --storage "$storage" --throughput "$OUT/throughput.json" \
    --syncs "$OUT/syncs.json" --models "$OUT/models.json" --json "$OUT/summary.json"
if [ -n "${GPU_CHECK_PACKING_MINUTES:-}" ]; then
    echo "== packing: K = 1, 4, 8 trials on one device, fused and as K workers," \
         "$GPU_CHECK_PACKING_MINUTES minutes an arm ($SECONDS s in)"
    "$PYTHON" -m benchmarks.packing --data "$IMAGENETTE_DIR" --device "$device" --image-size "$size" \
        --batch-size 64 --minutes "$GPU_CHECK_PACKING_MINUTES" --epochs 2 --settings 1 4 8 \
        ${GPU_CHECK_PER_CLASS:+--per-class "$GPU_CHECK_PER_CLASS"} $( [ "$device" = cpu ] && echo --threads 1 ) \
        --json "$OUT/packing.json"
fi
if [ -n "${GPU_CHECK_WORKERS_PER_GPU_MINUTES:-}" ]; then
    echo "== workers per GPU: 1 and 2, $GPU_CHECK_WORKERS_PER_GPU_MINUTES minutes each ($SECONDS s in)"
    "$PYTHON" -m benchmarks.packing --data "$IMAGENETTE_DIR" --device "$device" --image-size "$size" \
        --batch-size 64 --minutes "$GPU_CHECK_WORKERS_PER_GPU_MINUTES" --epochs 5 --settings 1 2 \
        --arms processes ${GPU_CHECK_PER_CLASS:+--per-class "$GPU_CHECK_PER_CLASS"} \
        --json "$OUT/workers_per_gpu.json"
fi
echo "gpu_check done in $SECONDS s; results in $OUT"
