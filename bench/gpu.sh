#!/usr/bin/env bash
# The GPU figures in one command (about 6-8 minutes on one H100 or H200):
#
#     pip install -e ".[test]"          # with a CUDA build of torch
#     bash bench/gpu.sh [OUT_DIR]       # default bench/gpu-results/<date>
#
# For each model, ours against its stock twin through the same Trainer, data and collator
# (bench/throughput.py): tokens/s, MFU, peak memory, and the data loader + collator alone.
#   microgpt-124m      seq 1024, bf16, GPT-2 small's 50,257-token head
#   microbert-base     seq 128,  bf16, BERT-base's 30,522-token vocabulary
#   microbert-8l-256d  seq 256,  bf16, the users' 24 GB model (25k vocabulary)
# then the levers at 124M: eager attention instead of SDPA, unfused AdamW, torch.compile.
# Every run writes OUT_DIR/<name>.json; OUT_DIR/summary.md is the table for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/gpu-results/$(date +%Y-%m-%d)}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# fail in seconds, naming what is missing, rather than seven times over
python -c "import torch, transformers, datasets, evaluate, accelerate, hfmicro.training.run
assert torch.cuda.is_available(), 'torch sees no GPU (a CPU build of torch?)'
print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__)" \
  | tee -a "$OUT/gpu.txt"

run() {  # name, then throughput.py arguments
  local name=$1; shift
  echo "== $name"
  python bench/throughput.py --device cuda --json "$OUT/$name.json" "$@" 2>&1 | grep -v "^{'train_runtime'" \
    | tee "$OUT/$name.log" | tail -4 || echo "$name failed (see $OUT/$name.log)"
}

GPT124=(--model microgpt --vocab_size 50257 -- --preset microgpt-124m --max_seq_length 1024
        --per_device_train_batch_size 16 --precision bf16)
BERTBASE=(--model microbert --vocab_size 30522 -- --preset microbert-base --max_seq_length 128
          --per_device_train_batch_size 128 --precision bf16)

run microgpt-124m "${GPT124[@]}"
run microbert-base "${BERTBASE[@]}"
# the 8L/256d preset's own head is 25k tokens: the override goes to throughput.py, not the recipe;
# the preset has the options its A10 recipe trains (pre-LN, rotary, QK-norm, ReLU², value residual)
run microbert-8l-256d --model microbert --vocab_size 25000 -- --preset microbert-8l-256d --max_seq_length 256 \
  --per_device_train_batch_size 64 --precision bf16
run microgpt-124m-eager --attn eager "${GPT124[@]}"
run microgpt-124m-adamw-unfused "${GPT124[@]}" --optim adamw_torch
run microgpt-124m-compile --rounds 2 "${GPT124[@]}" --torch_compile true
run microbert-base-compile --rounds 2 "${BERTBASE[@]}" --torch_compile true

python - "$OUT" <<'EOF'
import glob, json, os, sys

out = sys.argv[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    r = json.load(open(path))
    rows.append(f"| {os.path.basename(path)[:-5]} | {r['seq']} x {r['batch']} | {r['ours_tok_s']:,.0f} | "
                f"{r['stock_tok_s']:,.0f} | {r['ratio']:.2f}x | {r.get('ours_mfu', 0):.1%} | {r.get('stock_mfu', 0):.1%} | "
                f"{r.get('ours_peak_memory_gib', '-')} / {r.get('stock_peak_memory_gib', '-')} | "
                f"{r['loader_over_ours']:.0f}x |")
first = json.load(open(sorted(glob.glob(os.path.join(out, "*.json")))[0])) if rows else {}
header = (f"{first.get('date', '')}, {first.get('machine', '')}, torch {first.get('torch', '')}\n\n"
          "| run | seq x batch | ours tok/s | stock tok/s | ratio | ours MFU | stock MFU | peak GiB ours / stock | loader / ours |\n"
          "|---|---|---|---|---|---|---|---|---|")
open(os.path.join(out, "summary.md"), "w").write(header + "\n" + "\n".join(rows) + "\n")
print(header + "\n" + "\n".join(rows))
EOF
