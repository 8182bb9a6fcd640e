"""What the bench scripts share for running recipe variants: the real command in a fresh folder, its
settings, and the scores every comparison uses (held-out loss by `hfmicro evaluate`, repetition of samples).

Imported by name (`from recipe_runs import ...`): Python puts bench/ on sys.path when it runs a script from it.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from hfmicro.objectives import OBJECTIVES


def held_out_loss(folder: str, objective: str, seq: int) -> float:
    """The model's loss on the builtin validation windows of `seq` tokens (fixed masks at 15 % for MLM)."""
    from hfmicro.evaluation import evaluate_model

    return evaluate_model(folder, objective=objective, max_seq_length=seq, mlm_probability=0.15)["loss"]


def recipe_settings(objective: str, extra: list[str]) -> dict:
    """What our default recipe trains with (batch, schedule, learning rate, masking), for the rivals' runs."""
    from hfmicro.training.arguments import parse_recipe

    spec = OBJECTIVES[objective]
    _, data_args, args = parse_recipe(["--config", spec.recipe, *extra])
    return {"batch": args.per_device_train_batch_size, "scheduler": args.lr_scheduler_type,
            "scheduler_kwargs": dict(args.lr_scheduler_kwargs or {}), "warmup": args.warmup_steps,
            "weight_decay": args.weight_decay, "beta2": args.adam_beta2, "lr": args.learning_rate,
            "max_steps": args.max_steps, "seq": data_args.max_seq_length,
            "mlm_probability": data_args.mlm_probability if spec.masked else 0.0}


def run_recipe(objective: str, out: str, flags: list[str]) -> None:
    """The real command (recipes/pretrain_mlm.py / pretrain_clm.py, its default CPU recipe plus `flags`) into `out`."""
    subprocess.run([sys.executable, OBJECTIVES[objective].script, "--output_dir", out, "--report_to", "none", *flags],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def recipe_variant(objective: str, flags: list[str]):
    """run_recipe in a fresh folder, removed afterwards; yields (folder, minutes end to end, the run's
    eval_results.json, the model's parameter count)."""
    import torch
    from transformers import AutoConfig

    import hfmicro.models  # noqa: F401 (registers both families with AutoConfig)
    from hfmicro.presets import build_model

    with tempfile.TemporaryDirectory() as out:
        start = time.time()
        run_recipe(objective, out, flags)
        minutes = (time.time() - start) / 60
        with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
            results = json.load(f)
        with torch.device("meta"):
            parameters = build_model(AutoConfig.from_pretrained(out)).num_parameters()
        yield out, minutes, results, parameters


def variant_arguments(doc: str, variants: dict):
    """The command line of a bench that runs variants of a default recipe."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(variants), action="append", help="run only these variants")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("extra", nargs="*", help="recipe flags added to every variant (after --)")
    return parser.parse_args()


def write_rows(path: str | None, rows: list[dict]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, ensure_ascii=False)


def repetition_of(folder: str, prompt: str = "The module provides", samples: int = 20, max_new_tokens: int = 200) -> dict:
    """Mean repeated-4-gram share and distinct-2 of `samples` sampled continuations (default settings), each
    `max_new_tokens` long or as long as the model's context allows."""
    from hfmicro.inference import load_pipeline
    from hfmicro.pipelines import generate

    pipe = load_pipeline("text-generation", folder)
    room = pipe.model.config.max_position_embeddings - pipe.preprocess(prompt)["input_ids"].shape[-1]
    tokens = min(max_new_tokens, room)
    out = generate(pipe, prompt, max_new_tokens=tokens, num_return_sequences=samples)
    return {"repeated_4grams": statistics.mean(s["repeated_4grams"] for s in out),
            "distinct_2": statistics.mean(s["distinct_2"] for s in out), "sample_tokens": tokens,
            "example": out[0]["text"]}
