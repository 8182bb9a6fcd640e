"""`hfmicro estimate` against what training really takes, on this machine's CPU.

Usage (from the repository root; ~3 min on 2 cores, run it alone):

    python bench/bench_memory.py [--steps 8]

For each recipe below, `hfmicro estimate --gpu here` predicts the training memory beyond the model's
weights (gradients + AdamW state + activations + the logits at the step's peak, without its safety
margin), and the recipe runs for
`--steps` optimizer steps (no evaluation) in its own process while a thread samples the resident memory
every 2 ms: measured = peak RSS during `trainer.train()` minus RSS just before it (the weights, data and
libraries are already loaded then). On a GPU, measured = torch.cuda.max_memory_allocated() during
`trainer.train()` minus what was allocated before it.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# recipe, objective, extra flags (the A10 recipe at a CPU-sized batch)
CASES = [
    ("microbert-cpu.yaml", "mlm", []),
    ("microgpt-cpu.yaml", "clm", []),
    ("microbert-8l-256d-a10.yaml", "mlm", ["--per_device_train_batch_size", "8", "--precision", "fp32",
                                           "--dataset", "builtin"]),
    ("microgpt-8l-512d-a10.yaml", "clm", ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
                                          "--precision", "fp32", "--dataset", "builtin", "--streaming", "false"]),
]

MEASURE = r"""
import json, sys, threading
import psutil
from hfmicro.training import run
from hfmicro.training.trainer import PretrainingTrainer

process, peak, base = psutil.Process(), [0], [0]
train = PretrainingTrainer.train

def measured_train(self, *args, **kwargs):
    import gc
    import torch
    gc.collect()
    if torch.cuda.is_available():  # on a GPU: the peak of live tensors, as the caching allocator counts them
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        try:
            return train(self, *args, **kwargs)
        finally:
            print("MEMORY " + json.dumps({"base": before, "peak": torch.cuda.max_memory_allocated()}), flush=True)
    base[0] = peak[0] = process.memory_info().rss
    stop = threading.Event()
    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.002)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        return train(self, *args, **kwargs)
    finally:
        stop.set()
        thread.join()
        print("MEMORY " + json.dumps({"base": base[0], "peak": peak[0]}), flush=True)

PretrainingTrainer.train = measured_train
sys.exit(run.pretrain(sys.argv[1], sys.argv[2:]))
"""


def measure(recipe: str, objective: str, extra: list[str], steps: int, out: str) -> int:
    argv = ["--config", str(REPO / "recipes" / recipe), *extra, "--max_steps", str(steps), "--eval_strategy", "no",
            "--save_strategy", "no", "--eval_on_start", "false", "--output_dir", out, "--force_fresh", "true",
            "--logging_steps", str(steps), "--early_stopping_patience", "0"]
    # glibc keeps freed memory for reuse, so RSS would stay at its high-water mark of every temporary;
    # served by mmap, allocations of 64 kB and more go back to the system when freed, and RSS follows the
    # tensors that are alive (what torch.cuda.max_memory_allocated counts on a GPU)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", MEASURE, objective, *argv], cwd=REPO, capture_output=True,
                            text=True, env=env)
    line = next((l for l in result.stdout.splitlines() if l.startswith("MEMORY ")), None)
    if line is None or result.returncode:
        sys.exit(f"{recipe} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    memory = json.loads(line[len("MEMORY "):])
    return memory["peak"] - memory["base"]


def estimated(recipe: str, extra: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "hfmicro.cli", "estimate", "--gpu", "here", "--json", "--config",
                             str(REPO / "recipes" / recipe), *extra], cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    import tempfile

    print(f"{'recipe':<30} {'params':>11} {'estimated':>10} {'measured':>10} {'ratio':>6}   (MB beyond the weights)")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, objective, extra in CASES:
            estimate = estimated(recipe, extra)
            parts = estimate["memory_bytes"]
            predicted = parts["gradients"] + parts["optimizer"] + parts["activations"] + parts["logits"]
            grown = measure(recipe, objective, extra, args.steps, os.path.join(tmp, recipe))
            print(f"{recipe:<30} {estimate['parameters']['total']:>11,} {predicted / 1e6:>10.1f} {grown / 1e6:>10.1f} "
                  f"{predicted / grown:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
