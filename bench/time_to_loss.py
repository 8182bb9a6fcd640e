"""Time to quality: our default recipe against what a user would run instead, at equal CPU time.

    python bench/time_to_loss.py --objective clm                 # ~75 minutes on 2 CPU cores
    python bench/time_to_loss.py --objective mlm --seeds 0 --rival_lrs 2e-3

Ours: the real command (`recipes/pretrain_mlm.py` / `pretrain_clm.py`, the default CPU recipe) with a
checkpoint every eighth of the run. The baseline: a `run_mlm.py` / `run_clm.py`-style run of the stock
model of the same dimensions (`BertForMaskedLM` / `GPT2LMHeadModel` at their defaults) on the same
tokenizer, corpus and block length, with the example scripts' defaults (batch 8, linear decay, no
warmup, no weight decay, `DataCollatorForLanguageModeling` at 15 %), its learning rate picked by a sweep,
each sweep run given the same training time as ours (`--minutes`, default: our run's own).

Then the rival: the best architecture a user could pick from transformers at the same dimensions
(`ModernBertForMaskedLM` for MLM, `LlamaForCausalLM` for CLM; gated MLPs as wide as keeps the parameter
count), trained with our recipe's settings (batch, schedule, warmup, weight decay, masking rate) and its
own learning rate picked by a sweep on the first seed; then ours and the rival at its best rate on every
other seed (`--seeds`). The machine's speed can drift by a quarter within a session, so the rival's budget
is not a number of minutes timed hours apart: the two models' step times are measured interleaved on one
machine state first (`throughput.py --against rival`), and the rival trains for as many steps as fit in
our run's time at that relative speed. Its schedule ends at its last step; wall-clock minutes are printed
as well.

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

from baselines import RIVALS, StepTimer, baseline_model
from recipe_runs import held_out_loss, recipe_settings, repetition_of, run_recipe

BENCH = os.path.dirname(os.path.abspath(__file__))


def run_ours(objective: str, out: str, extra: list[str], settings: dict, curve: bool = True) -> dict:
    """Our recipe (plus `extra` flags; `settings` = its recipe_settings); with `curve`, checkpoints at every
    eighth of its steps are scored."""
    every = max(settings["max_steps"] // 8, 1) if curve else settings["max_steps"]
    run_recipe(objective, out, [*extra, "--save_steps", str(every), "--save_total_limit", "100",
                                "--load_best_model_at_end", "false"])
    with open(os.path.join(out, "training_history.json"), encoding="utf-8") as f:
        history = json.load(f)
    with open(os.path.join(out, "run_settings.json"), encoding="utf-8") as f:
        tokens_per_step = json.load(f)["run"]["tokens_per_step"]
    rate = statistics.median(r["tokens_per_second"] for r in history if "tokens_per_second" in r)
    seconds_per_step = tokens_per_step / rate  # training only: evals and saves left out
    points = []
    for checkpoint in sorted(glob.glob(os.path.join(out, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1])):
        step = int(checkpoint.rsplit("-", 1)[1])
        points.append((step * seconds_per_step, held_out_loss(checkpoint, objective, settings["seq"])))
    return {"seconds": settings["max_steps"] * seconds_per_step, "seq": settings["seq"], "curve": points,
            "seconds_per_step": seconds_per_step,
            "final_loss": points[-1][1], "folder": out}


# run_mlm.py / run_clm.py at their defaults (batch 8, linear decay, no warmup or weight decay, 15 % masking)
EXAMPLE_SCRIPT = {"batch": 8, "scheduler": "linear", "scheduler_kwargs": {}, "warmup": 0, "weight_decay": 0.0,
                  "beta2": 0.999, "mlm_probability": 0.15}


def run_baseline(kind: str, objective: str, lr: float, seconds: float | None, training: dict, out: str, seed: int,
                 steps: int | None = None) -> dict:
    """A transformers model trained by Trainer with `training`'s settings, for `steps` or about `seconds`
    (then its step time is measured on a few steps first, so the schedule ends exactly at the last step)."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from hfmicro.data import DataArguments, load_lm_datasets
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training.build import load_tokenizer

    seq, spec = training["seq"], OBJECTIVES[objective]
    tokenizer = load_tokenizer(spec.tokenizer, spec)
    train = load_lm_datasets(DataArguments(max_seq_length=seq), tokenizer, objective)["train"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=spec.masked,
                                               mlm_probability=training["mlm_probability"] or 0.15)

    def trainer_for(steps: int, folder: str, callbacks=()) -> Trainer:
        args = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=training["batch"], learning_rate=lr, max_steps=steps,
            lr_scheduler_type=training["scheduler"], lr_scheduler_kwargs=training["scheduler_kwargs"],
            warmup_steps=training["warmup"], weight_decay=training["weight_decay"], adam_beta2=training["beta2"],
            report_to=[], save_strategy="no", logging_steps=50, disable_tqdm=True, seed=seed, use_cpu=True,
            include_num_input_tokens_seen=True)
        return Trainer(model=baseline_model(kind, objective, tokenizer, seq, seed), args=args, train_dataset=train,
                       data_collator=collator, processing_class=tokenizer, callbacks=list(callbacks))

    if steps is None:
        timer = StepTimer(skip=10)
        trainer_for(60, os.path.join(out, "probe"), [timer.callback]).train()
        steps = max(int(seconds * timer.tokens_per_second() / (training["batch"] * seq)), 1)
    trainer = trainer_for(steps, out)
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    if getattr(trainer.model.config, "sparse_prediction", False):  # scored on every position like the others
        trainer.model.config.sparse_prediction = trainer.model.sparse_prediction = False
    trainer.save_model(out)
    return {"model": type(trainer.model).__name__, "parameters": trainer.model.num_parameters(), "lr": lr,
            "steps": steps, "seconds": elapsed, "final_loss": held_out_loss(out, objective, seq), "folder": out}


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


def loss_at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    """The (time, loss) curve's loss after `seconds` of training, linearly interpolated between checkpoints;
    its last loss from its last point on; None before its first point."""
    if seconds >= curve[-1][0]:
        return curve[-1][1]
    for (t0, l0), (t1, l1) in zip(curve, curve[1:]):
        if t0 <= seconds <= t1:
            return l0 + (l1 - l0) * (seconds - t0) / (t1 - t0)
    return None


def sweep(kind: str, objective: str, lrs: list[float], seconds: float | None, training: dict, root: str, seed: int,
          steps: int | None = None) -> list:
    results = []
    for lr in lrs:
        result = run_baseline(kind, objective, lr, seconds, training, os.path.join(root, f"{kind}-{lr:g}-seed{seed}"),
                              seed, steps)
        results.append(result)
        print(f"{result['model']} ({result['parameters']:,} parameters) lr {lr:g} seed {seed}: {result['steps']} steps, "
              f"{result['seconds'] / 60:.1f} min, held-out loss {result['final_loss']:.3f}", flush=True)
    return results


def relative_step_time(objective: str, extra: list[str]) -> float:
    """The rival's time per step over ours (same batch), measured interleaved on one machine state:
    `python bench/throughput.py --against rival`, median of 5 alternating rounds."""
    from hfmicro.objectives import OBJECTIVES

    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "throughput.json")
        subprocess.run([sys.executable, os.path.join(BENCH, "throughput.py"), "--model", OBJECTIVES[objective].family,
                        "--against", "rival", "--rounds", "5", "--steps", "20", "--json", report, "--", *extra],
                       check=True)
        with open(report, encoding="utf-8") as f:
            return json.load(f)["ratio"]  # ours tokens/s over the rival's: its seconds per step over ours


def rival_steps(ours: dict, budget: float, relative: float) -> int:
    """The rival's steps in `budget` seconds of our run (timed by our run itself, at our seconds per step),
    at `relative` = its step time over ours measured interleaved: independent of the machine's drift
    between runs."""
    return max(round(budget / ours["seconds_per_step"] / relative), 1)


def equal_time(seed: int, ours: dict, rival: dict, budget: float) -> dict:
    """Ours against a rival run of equal training time (its steps from rival_steps): ours at the end of
    its run, or read off its curve at `budget` where that is shorter."""
    seconds = min(budget, ours["seconds"])
    return {"seed": seed, "ours": loss_at(ours["curve"], seconds), "ours_minutes": seconds / 60,
            "ours_final": ours["final_loss"], "rival": rival["final_loss"], "rival_steps": rival["steps"],
            "rival_wall_minutes": rival["seconds"] / 60}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", choices=list(RIVALS), default="mlm")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3],
                        help="the stock run's learning-rate sweep (run_mlm.py's default is 5e-5)")
    parser.add_argument("--rival", choices=("auto", "none"), default="auto",
                        help="auto: also ModernBertForMaskedLM (mlm) / LlamaForCausalLM (clm); none: stock only")
    parser.add_argument("--rival_lrs", type=float, nargs="+", default=None,
                        help="the rival's sweep (default: our recipe's learning rate x 0.5, 1, 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="sweeps run on the first seed; ours and the rival's best rate on every seed")
    parser.add_argument("--minutes", type=float, default=None, help="training time of each run (default: ours)")
    parser.add_argument("--json", default=None, help="also write the numbers as JSON")
    parser.add_argument("extra", nargs="*", help="flags for our recipe (after --), e.g. -- --max_steps 400")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hfmicro-time-to-loss-") as root:
        report = compare(args, root)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)


def compare(args, root: str) -> dict:
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training.hardware import machine_description

    objective, seed0 = args.objective, args.seeds[0]
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  objective {objective}", flush=True)
    training = recipe_settings(objective, args.extra)
    ours = run_ours(objective, os.path.join(root, "ours"), [*args.extra, "--seed", str(seed0)], training)
    budget = args.minutes * 60 if args.minutes else ours["seconds"]
    print(f"ours: {os.path.relpath(OBJECTIVES[objective].recipe)} seed {seed0}, {ours['seconds'] / 60:.1f} min of training, held-out "
          "loss " + ", ".join(f"{loss:.3f} at {t / 60:.1f} min" for t, loss in ours["curve"]), flush=True)
    stock = sweep("stock", objective, args.lrs, budget, {**EXAMPLE_SCRIPT, "seq": ours["seq"]}, root, seed0)
    best = min(stock, key=lambda r: r["final_loss"])
    reached = time_to_reach(ours["curve"], best["final_loss"])
    ratio = reached / best["seconds"] if reached is not None else None
    report = {"objective": objective, "machine": machine_description(), "date": time.strftime("%Y-%m-%d"),
              "ours": {k: v for k, v in ours.items() if k != "folder"},
              "stock_sweep": [{k: v for k, v in r.items() if k != "folder"} for r in stock],
              "stock_best_lr": best["lr"], "stock_final_loss": best["final_loss"],
              "ours_seconds_to_stock_loss": reached, "time_ratio": ratio}
    if ratio is None:
        print(f"our recipe did not reach the stock run's {best['final_loss']:.3f} (lr {best['lr']:g}) within its run")
    else:
        print(f"our recipe reached the stock run's final held-out loss {best['final_loss']:.3f} (lr {best['lr']:g}) "
              f"after {reached / 60:.1f} min: {ratio:.2f}x the stock run's {best['seconds'] / 60:.1f} min", flush=True)
    generates = OBJECTIVES[objective].task == "text-generation"
    if generates:
        mine = repetition_of(ours["folder"])  # as long as our model's context allows; the others the same length
        report["repetition"] = {"ours": mine, "stock": repetition_of(best["folder"], max_new_tokens=mine["sample_tokens"])}
    if args.rival == "auto":
        kind = RIVALS[objective]
        relative = relative_step_time(objective, args.extra)
        print(f"the rival's step time over ours, interleaved: {relative:.3f}", flush=True)
        lrs = args.rival_lrs or [training["lr"] * f for f in (0.5, 1, 2)]
        rivals = sweep(kind, objective, lrs, None, training, root, seed0, rival_steps(ours, budget, relative))
        rival = min(rivals, key=lambda r: r["final_loss"])
        seeds = [equal_time(seed0, ours, rival, budget)]
        for seed in args.seeds[1:]:
            again = run_ours(objective, os.path.join(root, f"ours-seed{seed}"), [*args.extra, "--seed", str(seed)],
                             training)
            print(f"ours seed {seed}: {again['seconds'] / 60:.1f} min of training, held-out loss {again['final_loss']:.3f}",
                  flush=True)
            seconds = args.minutes * 60 if args.minutes else again["seconds"]
            theirs = sweep(kind, objective, [rival["lr"]], None, training, root, seed,
                           rival_steps(again, seconds, relative))[0]
            seeds.append(equal_time(seed, again, theirs, seconds))
        report["rival"] = {"model": rival["model"], "parameters": rival["parameters"], "best_lr": rival["lr"],
                           "step_time_over_ours": relative,
                           "sweep": [{k: v for k, v in r.items() if k != "folder"} for r in rivals], "seeds": seeds,
                           "ours_lower_on_every_seed": all(s["ours"] < s["rival"] for s in seeds)}
        if generates:
            report["repetition"]["rival"] = repetition_of(rival["folder"], max_new_tokens=mine["sample_tokens"])
        print(f"held-out loss at equal training time, ours vs {rival['model']} (lr {rival['lr']:g}, our recipe's "
              "settings): " + "; ".join(f"seed {s['seed']} {s['ours']:.3f} ({s['ours_minutes']:.1f} min) vs "
                                         f"{s['rival']:.3f} ({s['rival_steps']:,} steps, {s['rival_wall_minutes']:.1f} "
                                         "min wall clock)" for s in seeds)
              + f" -> ours lower on every seed: {report['rival']['ours_lower_on_every_seed']}")
    for name, rep in report.get("repetition", {}).items():
        print(f"repetition ({name}, 20 samples of {rep['sample_tokens']} tokens): repeated 4-grams "
              f"{rep['repeated_4grams']:.1%}, distinct-2 {rep['distinct_2']:.2f}")
    return report


if __name__ == "__main__":
    main()
