"""The default MicroBERT recipe with and without what ModernBERT does differently at this size and what the
GPT speedruns found (README, "The default recipes").

    python bench/bench_bert_options.py                        # every variant, ~7 minutes each on 2 CPU cores
    python bench/bench_bert_options.py --only before --only default

Each variant is the real command (`recipes/pretrain_mlm.py`, i.e. recipes/microbert-cpu.yaml, plus the
flags below) in a fresh output folder, so every variant trains the same steps on the same data; the
minutes column shows they also cost the same CPU time. Each final model is scored by `hfmicro evaluate`
(the same held-out windows and fixed masks at 15 % as bench/time_to_loss.py, so the losses compare with
its ModernBertForMaskedLM runs), plus the recipe's own eval accuracy on the masked tokens.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the recipe until 2026-12-03 (GELU, no QK-norm, lr 2e-3), whatever it says now
BEFORE = ["--hidden_act", "gelu", "--qk_norm", "false", "--learning_rate", "2e-3"]
LR = ["--learning_rate", "1e-3"]

VARIANTS = {
    "before": BEFORE,
    "lr 1e-3": [*BEFORE, *LR],
    "decoder_bias": [*BEFORE, *LR, "--decoder_bias", "true"],
    "scaled init": [*BEFORE, *LR, "--residual_init", "scaled"],
    "zero init": [*BEFORE, *LR, "--residual_init", "zero"],
    "glu": [*BEFORE, *LR, "--mlp_type", "glu", "--intermediate_size", "704"],
    "relu2": [*BEFORE, *LR, "--hidden_act", "relu2"],
    "glu+relu2": [*BEFORE, *LR, "--mlp_type", "glu", "--intermediate_size", "704", "--hidden_act", "relu2"],
    "relu2+qk_norm 2e-3": [*BEFORE, "--hidden_act", "relu2", "--qk_norm", "true"],
    "relu2+qk_norm": ["--value_residual", "false"],  # the default of 2026-12-03, morning
    "geglu": ["--mlp_type", "glu", "--intermediate_size", "704", "--hidden_act", "gelu"],  # ModernBERT's MLP, on the default
    # the recipe as it ships: since 2026-12-03 lr 1e-3, ReLU², QK-norm, value residual
    "default": [],
}


def main():
    from time_to_loss import held_out_loss, recipe_variant, variant_arguments

    from hfmicro.training.hardware import machine_description

    args = variant_arguments(__doc__, VARIANTS)
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  recipes/microbert-cpu.yaml {' '.join(args.extra)}")
    print(f"{'variant':<18} {'params':>10} {'minutes':>8} {'held-out loss':>13} {'masked acc':>10}", flush=True)
    rows = []
    for name in args.only or VARIANTS:
        with recipe_variant("mlm", [*VARIANTS[name], *args.extra]) as (out, minutes, results, params):
            loss = held_out_loss(out, "mlm", 64)
        row = {"variant": name, "flags": VARIANTS[name], "parameters": params, "minutes": round(minutes, 1),
               "held_out_loss": loss, "eval_accuracy": results["eval_accuracy"]}
        rows.append(row)
        print(f"{name:<18} {params:>10,} {minutes:>8.1f} {loss:>13.3f} {row['eval_accuracy']:>10.1%}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
