"""The default MicroBERT recipe with and without what ModernBERT does differently at this size and what the
GPT speedruns found (README, "The default recipes").

    python bench/bench_bert_options.py                        # every variant, ~7 minutes each on 2 CPU cores
    python bench/bench_bert_options.py --only "plain, lr 2e-3" --only default

Each variant is the real command (`recipes/pretrain_mlm.py`, i.e. recipes/microbert-cpu.yaml, plus the
flags below) in a fresh output folder, so every variant trains the same steps on the same data; the
minutes column shows they also cost the same CPU time. Each final model is scored by `hfmicro evaluate`
(the same held-out windows and fixed masks at 15 % as bench/time_to_loss.py, so the losses compare with
its ModernBertForMaskedLM runs), plus the recipe's own eval accuracy on the masked tokens.
"""

import time

from recipe_runs import held_out_loss, recipe_variant, variant_arguments, write_rows

# Each variant is named by how it differs from the recipe as it ships ("default"). "plain": without the
# speedrun options, i.e. GELU MLPs, no QK-norm, no value residual (pre-LN, rotary, no biases or dropout stay).
# bench/RESULTS.md keeps which variant each earlier table row was.
PLAIN = ["--hidden_act", "gelu", "--qk_norm", "false", "--value_residual", "false"]
RELU2_HEAD = ["--head_act", "relu2"]  # the prediction head's activation as the MLPs' (ReLU²), not GELU
GLU = ["--mlp_type", "glu", "--intermediate_size", "704"]  # a gated MLP as wide as keeps the parameter count


def lr(rate: str) -> list[str]:
    return ["--learning_rate", rate]


EIGHT_LAYERS = ["--preset", "microbert-8l-256d"]  # the users' 8-layer MicroBERT
THREE_LAYERS = ["--preset", "microbert-3l-512d"]  # the users' d512/h8/ff2048 3-layer BERT

VARIANTS = {
    "plain, lr 2e-3": [*PLAIN, *lr("2e-3")],
    "plain, lr 1e-3": [*PLAIN, *lr("1e-3")],
    "plain, lr 1e-3, decoder bias": [*PLAIN, *lr("1e-3"), "--decoder_bias", "true"],
    "plain, lr 1e-3, scaled init": [*PLAIN, *lr("1e-3"), "--residual_init", "scaled"],
    "plain, lr 1e-3, zero init": [*PLAIN, *lr("1e-3"), "--residual_init", "zero"],
    "plain, lr 1e-3, GLU": [*PLAIN, *lr("1e-3"), *GLU],
    "plain, lr 1e-3, ReLU²": [*PLAIN, *lr("1e-3"), "--hidden_act", "relu2", *RELU2_HEAD],
    "plain, lr 1e-3, GLU + ReLU²": [*PLAIN, *lr("1e-3"), *GLU, "--hidden_act", "relu2", *RELU2_HEAD],
    "plain, lr 2e-3, ReLU² + QK-norm": [*PLAIN, *lr("2e-3"), "--hidden_act", "relu2", "--qk_norm", "true", *RELU2_HEAD],
    "ReLU² head, lr 1e-3, no value residual": [*lr("1e-3"), *RELU2_HEAD, "--value_residual", "false"],
    "ReLU² head, lr 1e-3": [*lr("1e-3"), *RELU2_HEAD],
    "ReLU² head, lr 7e-4": [*lr("7e-4"), *RELU2_HEAD],
    "ReLU² head": RELU2_HEAD,
    "ReLU² head, lr 2e-3": [*lr("2e-3"), *RELU2_HEAD],
    "lr 1e-3, GeGLU": [*lr("1e-3"), *GLU, "--hidden_act", "gelu"],  # ModernBERT's MLP
    "lr 1e-3": lr("1e-3"),
    "default": [],
    "8 layers, plain, lr 1e-3": [*EIGHT_LAYERS, *PLAIN, *lr("1e-3")],
    "8 layers, lr 1e-3": [*EIGHT_LAYERS, *lr("1e-3")],
    "8 layers": EIGHT_LAYERS,
    "3 layers d512, plain, lr 2e-3": [*THREE_LAYERS, *PLAIN, *lr("2e-3")],
    "3 layers d512, lr 2e-3": [*THREE_LAYERS, *lr("2e-3")],
}


def main():
    from hfmicro.training.hardware import machine_description

    args = variant_arguments(__doc__, VARIANTS)
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  recipes/microbert-cpu.yaml {' '.join(args.extra)}")
    width = max(map(len, args.only or VARIANTS))
    print(f"{'variant':<{width}} {'params':>10} {'minutes':>8} {'held-out loss':>13} {'masked acc':>10}", flush=True)
    rows = []
    for name in args.only or VARIANTS:
        with recipe_variant("mlm", [*VARIANTS[name], *args.extra]) as (out, minutes, results, params):
            loss = held_out_loss(out, "mlm", 64)
        row = {"variant": name, "flags": VARIANTS[name], "parameters": params, "minutes": round(minutes, 1),
               "held_out_loss": loss, "eval_accuracy": results["eval_accuracy"]}
        rows.append(row)
        print(f"{name:<{width}} {params:>10,} {minutes:>8.1f} {loss:>13.3f} {row['eval_accuracy']:>10.1%}", flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
