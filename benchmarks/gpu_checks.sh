#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script with a time budget (a GPU session is short):
#   1. latency vs FLOPs on the GPU: eager fp32 at batch 1, CUDA graphs fp16 at batch 1, eager bf16 at batch 64
#   2. `elastoformer bench --device cuda` on a planned run (fp32/fp16/bf16), `elastoformer export` of it, and the
#      clear errors for runtimes this host lacks
#   3. the reference recipes on CUDA with their AMP settings (DeiT bf16; ResNet fp16 with a GradScaler), tiny
#      models on dummy data
#   4. the rebuild step's overhead against a plain Trainer step on the GPU (bf16)
#   5. the trainer/recipe/bench/family tests with CUDA visible
#   6. the round_to sweep (issue #19): DeiT-B and ResNet-50 at round_to 8, 32, 64 x (whole heads, head dims), eager
#      bf16 at batch 64 and CUDA graphs fp16 at batch 1, every family of a setting in one interleaved run (a
#      rounding wider than a core width is reported and skipped: head dims at CR 0.6 keep 24 per head)
# Every step is independent; a step starts only while BUDGET seconds are not yet spent. Results (JSON, PNG,
# logs) go to OUT (default benchmarks/results/gpu), packed into OUT/gpu_results.tar.gz as well.
#
#   bash benchmarks/gpu_checks.sh                 # on a machine with torch + CUDA and this repo's deps
#   WHEELS=.whl bash benchmarks/gpu_checks.sh     # first install the wheels in .whl (no network) to /tmp/site
#   ONLY=env,trainer_overhead bash benchmarks/gpu_checks.sh   # only these steps
#   ONLY=env,sweep_bf16_b64,sweep_graph_fp16_b1 bash benchmarks/gpu_checks.sh   # only the round_to sweep (2 x 200 s at most)
set -u
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-520}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
RES=$(mktemp -d)
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PY:-python3}

step() {  # step NAME TIMEOUT COMMAND...: run unless the budget is spent; log to $RES/NAME.log
    local name=$1 limit=$2
    shift 2
    if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        return
    fi
    if (( SECONDS + 20 > BUDGET )); then
        echo "=== $name: SKIPPED (budget: ${SECONDS}s of ${BUDGET}s spent)"
        return
    fi
    (( limit > BUDGET - SECONDS )) && limit=$(( BUDGET - SECONDS ))
    echo "=== $name (limit ${limit}s, at ${SECONDS}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$RES/$name.log" 2>&1
    local rc=$?
    tail -n "${TAIL:-25}" "$RES/$name.log"
    echo "=== $name: rc $rc in $(( SECONDS - t0 ))s"
}

step env 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; \
    $PY -c 'import sys, torch, transformers, timm, torch_pruning, datasets; print(sys.version.split()[0], \
    torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), transformers.__version__, \
    timm.__version__, torch_pruning.__version__, datasets.__version__)'"

LVF="$PY benchmarks/latency_vs_flops.py --device cuda --round_to auto,1 --repeats 30 --warmup 5"
TAIL=40 step lvf_eager_fp32_b1 150 $LVF --output "$RES/latency_vs_flops_cuda_eager_fp32_b1.json"

# 2. bench CLI on a planned (untrained) run of a small ViT
step bench_cli 240 bash -c "set -e
    $PY -c 'from transformers import ViTConfig; ViTConfig(hidden_size=384, num_hidden_layers=12, \
        num_attention_heads=6, intermediate_size=1536, num_labels=100, \
        architectures=[\"ViTForImageClassification\"]).save_pretrained(\"$RES/vit-s\")'
    $PY -m elastoformer_hf plan --model_name $RES/vit-s --random_init --pruning_ratio 0.5 --pruning_steps 3 \
        --output_dir $RES/plan_run
    for p in fp32 fp16 bf16; do
        $PY -m elastoformer_hf bench $RES/plan_run --device cuda --precision \$p --batch_sizes 1,32 --repeats 30
    done
    $PY -c 'import json; e = json.load(open(\"$RES/plan_run/dn1/latency.json\")); \
        print(len(e), \"entries in dn1/latency.json;\", sorted({(x[\"precision\"], x[\"batch_size\"]) for x in e}), \
              e[0][\"device\"].get(\"gpu\"))'
    $PY -m elastoformer_hf export $RES/plan_run --format onnx
    for rt in onnxruntime tensorrt; do
        $PY -m elastoformer_hf bench $RES/plan_run --device cuda --runtime \$rt --no_write 2>&1 | tail -n 2 || true
    done"

# 3. the reference recipes on CUDA with their AMP settings
RECIPE_SMALL="--dataset_name dummy --dummy_num_classes 10 --dummy_image_size 32 --max_train_samples 64"
RECIPE_SMALL+=" --max_eval_samples 32 --per_device_train_batch_size 16 --per_device_eval_batch_size 16"
RECIPE_SMALL+=" --max_steps 2 --dataloader_num_workers 0 --save_family true --random_init true ${RECIPE_EXTRA:-}"
step recipe_deit_bf16 150 bash -c "$PY -c 'from transformers import ViTConfig; ViTConfig(hidden_size=64, \
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32, patch_size=8, \
        num_labels=10, architectures=[\"ViTForImageClassification\"]).save_pretrained(\"$RES/tiny-vit\")' && \
    $PY recipes/deit.py --config recipes/configs/deit_base_imagenet.yaml $RECIPE_SMALL \
        --model_name_or_path $RES/tiny-vit --output_dir $RES/deit_bf16 && \
    $PY -c 'import json; s = json.load(open(\"$RES/deit_bf16/elastic_summary.json\")); \
        r = json.load(open(\"$RES/deit_bf16/elastic_run.json\")); \
        print(\"levels\", [lv[\"level\"] for lv in s[\"levels\"]], \"bf16\", r[\"training\"].get(\"bf16\"))'"
step recipe_resnet_fp16 150 $PY recipes/cnn.py --config recipes/configs/resnet50_imagenet.yaml $RECIPE_SMALL \
    --model_name_or_path resnet18 --pruning_steps 2 --bf16 false --fp16 true --output_dir "$RES/resnet_fp16"

# 1b. kernel time without launch overhead, and a larger batch
TAIL=40 step lvf_graph_fp16_b1 150 $LVF --cuda_graph --precision fp16 \
    --output "$RES/latency_vs_flops_cuda_graph_fp16_b1.json"

# 4. the rebuild step's overhead on the GPU
step trainer_overhead 150 $PY benchmarks/trainer_overhead.py --model deit-s-224 --batch-size 64 --steps 12 \
    --repeats 3 --device cuda --bf16 --output "$RES/trainer_overhead_cuda_bf16.json"

# 5. the tests that train, with CUDA visible
# pytest-xdist where installed (the GPU image has it; this project's venv does not)
XDIST=$($PY -c 'import xdist' 2>/dev/null && echo "-n ${PYTEST_WORKERS:-8}")
# Two threads per worker: 8 workers at the default thread count (one per core) oversubscribe the 16 cores.
TAIL=${PYTEST_TAIL:-15} OMP_NUM_THREADS=${PYTEST_THREADS:-2} step pytest_cuda "${PYTEST_LIMIT:-150}" \
    $PY -m pytest -q ${PYTEST_ARGS:--x} -p no:cacheprovider --durations=10 $XDIST \
    ${PYTEST_FILES:-tests/test_trainer.py tests/test_recipe.py tests/test_bench.py tests/test_drop_path.py tests/test_family.py}

TAIL=40 step lvf_eager_bf16_b64 150 $LVF --precision bf16 --batch_size 64 \
    --output "$RES/latency_vs_flops_cuda_eager_bf16_b64.json"

# 6. the round_to sweep: which multiple, and whole heads or head dims, GPU kernels like (issue #19)
SWEEP="$PY benchmarks/latency_vs_flops.py --device cuda --models deit-b,resnet50 --round_to 8,32,64"
SWEEP+=" --head_pruning heads,head_dims --repeats 30 --warmup 5"
TAIL=60 step sweep_bf16_b64 200 $SWEEP --precision bf16 --batch_size 64 \
    --output "$RES/round_to_sweep_cuda_bf16_b64.json"
TAIL=60 step sweep_graph_fp16_b1 200 $SWEEP --cuda_graph --precision fp16 \
    --output "$RES/round_to_sweep_cuda_graph_fp16_b1.json"

cp "$RES"/*.json "$RES"/*.png "$RES"/*.log "$OUT"/ 2>/dev/null
tar -czf "$OUT/gpu_results.tar.gz" -C "$RES" --exclude='*.safetensors' --exclude='*.onnx' . 2>/dev/null
echo "=== done in ${SECONDS}s; results in $OUT"
