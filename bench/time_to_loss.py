"""Time to quality: our default recipe against what a user would run instead, at equal CPU time.

    python bench/time_to_loss.py --objective mlm                 # ~45 minutes on 2 CPU cores
    python bench/time_to_loss.py --objective clm --lrs 3e-4 1e-3 3e-3

Ours: the real command (`recipes/pretrain_mlm.py` / `pretrain_clm.py`, the default CPU recipe) with a
checkpoint every eighth of the run. The baseline: a `run_mlm.py` / `run_clm.py`-style run of the stock
model of the same dimensions (`BertForMaskedLM` / `GPT2LMHeadModel` at their defaults) on the same
tokenizer, corpus and block length, with the example scripts' defaults (batch 8, linear decay, no
warmup, no weight decay, `DataCollatorForLanguageModeling` at 15 %), its learning rate picked by a sweep,
each sweep run given the same training time as ours (`--minutes`, default: our run's own).

Every model is scored by `hfmicro evaluate`: the same validation windows and, for MLM, the same fixed
masks at 15 %. Printed: the stock run's best final held-out loss, the training time our recipe needed to
reach it (interpolated between checkpoints) as a ratio of the stock run's time, and for CLM the
repetition of 20 samples of each final model at the default sampling settings.
"""

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SCRIPTS = {"mlm": ("pretrain_mlm.py", "microbert-cpu.yaml"), "clm": ("pretrain_clm.py", "microgpt-cpu.yaml")}


def held_out_loss(folder: str, objective: str, seq: int) -> float:
    from hfmicro.evaluation import evaluate_model

    return evaluate_model(folder, objective=objective, max_seq_length=seq, mlm_probability=0.15)["loss"]


def run_ours(objective: str, out: str, extra: list[str]) -> dict:
    """Our recipe (plus `extra` flags), with checkpoints at every eighth of its steps kept for scoring."""
    from hfmicro.training.arguments import parse_recipe

    script, recipe = SCRIPTS[objective]
    _, data_args, args = parse_recipe(["--config", os.path.join(REPO, "recipes", recipe), "--output_dir", out, *extra])
    values = {"max_steps": args.max_steps, "max_seq_length": data_args.max_seq_length}
    every = max(values["max_steps"] // 8, 1)
    subprocess.run([sys.executable, os.path.join(REPO, "recipes", script), "--output_dir", out, "--report_to", "none",
                    *extra, "--save_steps", str(every), "--save_total_limit", "100", "--load_best_model_at_end", "false"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = json.load(open(os.path.join(out, "training_history.json")))
    settings = json.load(open(os.path.join(out, "run_settings.json")))
    rate = statistics.median(r["tokens_per_second"] for r in history if "tokens_per_second" in r)
    seconds_per_step = settings["run"]["tokens_per_step"] / rate  # training only: evals and saves left out
    points = []
    for checkpoint in sorted(glob.glob(os.path.join(out, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1])):
        step = int(checkpoint.rsplit("-", 1)[1])
        points.append((step * seconds_per_step, held_out_loss(checkpoint, objective, values["max_seq_length"])))
    return {"seconds": values["max_steps"] * seconds_per_step, "seq": values["max_seq_length"], "curve": points,
            "final_loss": points[-1][1]}


def stock_model(objective: str, tokenizer, seq: int, seed: int):
    """What a user builds from transformers at the dimensions of our recipe's model, defaults elsewhere."""
    from throughput import stock_twin
    from transformers import set_seed

    from hfmicro.presets import preset_config
    from hfmicro.training.arguments import load_recipe_yaml

    values = load_recipe_yaml(os.path.join(REPO, "recipes", SCRIPTS[objective][1]))
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if objective == "clm":
        ids |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = preset_config(values["preset"], vocab_size=len(tokenizer), max_position_embeddings=max(seq, 512), **ids)
    set_seed(seed)
    return stock_twin(config)


def run_stock(objective: str, lr: float, seconds: float, seq: int, out: str, seed: int) -> dict:
    """A run_mlm.py / run_clm.py-style run for about `seconds` of training: its step time is measured on
    a few steps first, so the linear schedule ends exactly at the last step."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from hfmicro.data import DataArguments, load_lm_datasets
    from hfmicro.training.arguments import SHIPPED_TOKENIZERS
    from hfmicro.training.run import _load_tokenizer

    tokenizer = _load_tokenizer(SHIPPED_TOKENIZERS[objective], objective)
    train = load_lm_datasets(DataArguments(max_seq_length=seq), tokenizer, objective)["train"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=objective == "mlm", mlm_probability=0.15)

    def trainer_for(steps: int, folder: str) -> Trainer:
        args = TrainingArguments(output_dir=folder, per_device_train_batch_size=8, learning_rate=lr, max_steps=steps,
                                 lr_scheduler_type="linear", report_to=[], save_strategy="no", logging_steps=50,
                                 disable_tqdm=True, seed=seed, use_cpu=True)
        return Trainer(model=stock_model(objective, tokenizer, seq, seed), args=args, train_dataset=train,
                       data_collator=collator, processing_class=tokenizer)

    probe = trainer_for(20, os.path.join(out, "probe"))
    start = time.perf_counter()
    probe.train()
    per_step = (time.perf_counter() - start) / 20
    steps = max(int(seconds / per_step), 1)
    trainer = trainer_for(steps, out)
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    trainer.save_model(out)
    return {"lr": lr, "steps": steps, "seconds": elapsed, "final_loss": held_out_loss(out, objective, seq), "folder": out}


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first time the (time, loss) curve reaches `target`, linearly interpolated; None if never."""
    previous = (0.0, math.inf)
    for t, loss in curve:
        if loss <= target:
            if math.isinf(previous[1]):
                return t
            t0, l0 = previous
            return t0 + (t - t0) * (l0 - target) / (l0 - loss)
        previous = (t, loss)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", choices=SCRIPTS, default="mlm")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3],
                        help="the stock run's learning-rate sweep (run_mlm.py's default is 5e-5)")
    parser.add_argument("--minutes", type=float, default=None, help="training time of each run (default: ours)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the numbers as JSON")
    parser.add_argument("extra", nargs="*", help="flags for our recipe (after --), e.g. -- --max_steps 400")
    args = parser.parse_args()
    from hfmicro.training.hardware import machine_description

    root = tempfile.mkdtemp(prefix="hfmicro-time-to-loss-")
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  objective {args.objective}", flush=True)
    ours = run_ours(args.objective, os.path.join(root, "ours"), args.extra)
    budget = args.minutes * 60 if args.minutes else ours["seconds"]
    print(f"ours: recipes/{SCRIPTS[args.objective][1]}, {ours['seconds'] / 60:.1f} min of training, held-out loss "
          + ", ".join(f"{loss:.3f} at {t / 60:.1f} min" for t, loss in ours["curve"]), flush=True)
    sweep = []
    for lr in args.lrs:
        result = run_stock(args.objective, lr, budget, ours["seq"], os.path.join(root, f"stock-{lr:g}"), args.seed)
        sweep.append(result)
        print(f"stock lr {lr:g}: {result['steps']} steps, {result['seconds'] / 60:.1f} min, held-out loss "
              f"{result['final_loss']:.3f}", flush=True)
    best = min(sweep, key=lambda r: r["final_loss"])
    reached = time_to_reach(ours["curve"], best["final_loss"])
    ratio = reached / best["seconds"] if reached is not None else None
    report = {"objective": args.objective, "machine": machine_description(), "date": time.strftime("%Y-%m-%d"),
              "ours": ours, "stock_sweep": [{k: v for k, v in r.items() if k != "folder"} for r in sweep],
              "stock_best_lr": best["lr"], "stock_final_loss": best["final_loss"],
              "ours_seconds_to_stock_loss": reached, "time_ratio": ratio}
    if ratio is None:
        print(f"our recipe did not reach the stock run's {best['final_loss']:.3f} (lr {best['lr']:g}) within its run")
    else:
        print(f"our recipe reached the stock run's final held-out loss {best['final_loss']:.3f} (lr {best['lr']:g}) "
              f"after {reached / 60:.1f} min: {ratio:.2f}x the stock run's {best['seconds'] / 60:.1f} min")
    if args.objective == "clm":
        from bench_gpt_options import repetition_of

        report["repetition"] = {"ours": repetition_of(os.path.join(root, "ours")), "stock": repetition_of(best["folder"])}
        for name, rep in report["repetition"].items():
            print(f"repetition ({name}, 20 samples of {rep['sample_tokens']} tokens): repeated 4-grams "
                  f"{rep['repeated_4grams']:.1%}, distinct-2 {rep['distinct_2']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
