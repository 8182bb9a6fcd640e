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

# what the recipes had until 2026-12-03: pre-LN, rotary, no biases or dropout, but not these
WITHOUT = ["--hidden_act", "gelu", "--qk_norm", "false", "--value_residual", "false"]
# the recipe until 2026-12-03 (GELU, no QK-norm or value residual, lr 2e-3), whatever it says now
BEFORE = [*WITHOUT, "--learning_rate", "2e-3"]
LR = ["--learning_rate", "1e-3"]
# until the afternoon of 2026-12-03 the prediction head used the MLP's activation (ReLU² once the MLP took it)
RELU2_HEAD = ["--head_act", "relu2"]
# the default of the late morning of 2026-12-03: QK-norm, ReLU², value residual, lr 1e-3
MORNING = [*LR, *RELU2_HEAD]


# the users' microbert-8l-256d preset, which has the default's options (its recipes had WITHOUT until 2026-12-03)
EIGHT_LAYERS = ["--preset", "microbert-8l-256d"]
# the users' d512/h8/ff2048 3-layer BERT (its preset has the default's options) at its H200 recipe's lr 2e-3, as
# that recipe shipped until 2026-12-03 and as it is now, at this recipe's batch, sequence length and steps
THREE_LAYERS = ["--preset", "microbert-3l-512d", "--learning_rate", "2e-3"]

VARIANTS = {
    "before": BEFORE,
    "lr 1e-3": [*BEFORE, *LR],
    "decoder_bias": [*BEFORE, *LR, "--decoder_bias", "true"],
    "scaled init": [*BEFORE, *LR, "--residual_init", "scaled"],
    "zero init": [*BEFORE, *LR, "--residual_init", "zero"],
    "glu": [*BEFORE, *LR, "--mlp_type", "glu", "--intermediate_size", "704"],
    "relu2": [*BEFORE, *LR, "--hidden_act", "relu2", *RELU2_HEAD],
    "glu+relu2": [*BEFORE, *LR, "--mlp_type", "glu", "--intermediate_size", "704", "--hidden_act", "relu2",
                  *RELU2_HEAD],
    "relu2+qk_norm 2e-3": [*BEFORE, "--hidden_act", "relu2", "--qk_norm", "true", *RELU2_HEAD],
    "relu2+qk_norm": [*MORNING, "--value_residual", "false"],  # the default of 2026-12-03, morning
    "value_residual": MORNING,  # the default from the late morning of 2026-12-03
    "geglu": [*LR, "--mlp_type", "glu", "--intermediate_size", "704", "--hidden_act", "gelu"],  # ModernBERT's MLP
    "lr 7e-4": ["--learning_rate", "7e-4", *RELU2_HEAD],
    "lr 1.4e-3": ["--learning_rate", "1.4e-3", *RELU2_HEAD],
    "lr 2e-3": ["--learning_rate", "2e-3", *RELU2_HEAD],
    "gelu head": LR,
    # the recipe as it ships: since the afternoon of 2026-12-03 lr 1.4e-3, ReLU² MLPs with a GELU prediction
    # head, QK-norm, value residual
    "default": [],
    # the users' 8-layer MicroBERT at this recipe's batch, sequence length and steps: as its recipes shipped
    # (lr 1e-3), then with the default's options at that rate and at the default's 1.4e-3
    "8l shipped": [*EIGHT_LAYERS, *WITHOUT, "--learning_rate", "1e-3"],
    "8l options": [*EIGHT_LAYERS, "--learning_rate", "1e-3"],
    "8l options 1.4e-3": EIGHT_LAYERS,
    "3l shipped": [*THREE_LAYERS, *WITHOUT],
    "3l options": THREE_LAYERS,
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
