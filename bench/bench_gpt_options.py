"""The default MicroGPT recipe with and without what the GPT speedruns found (README, "The default recipes").

    python bench/bench_gpt_options.py                  # every variant, ~5 minutes each on 2 CPU cores
    python bench/bench_gpt_options.py --only rotary    # some of them

Each variant is the real command (`recipes/pretrain_clm.py`, i.e. recipes/microgpt-cpu.yaml, plus the
flags below) in a fresh output folder, so every variant trains the same steps on the same data; the
minutes column shows they also cost the same CPU time. The table comes from each run's
eval_results.json (held-out loss and next-token accuracy), plus repetition in 20 samples from the final
model at hfmicro's default sampling settings (share of repeated 4-grams, distinct-2), each as long as
the model's context allows.
"""

import time

from recipe_runs import recipe_variant, repetition_of, variant_arguments, write_rows

GPT2 = ["--position_embedding_type", "absolute", "--qk_norm", "false", "--hidden_act", "gelu_new",
        "--zero_init_residual", "false", "--tie_word_embeddings", "true"]  # GPT-2's choices, whatever the recipe says

VARIANTS = {
    "gpt2": GPT2,
    "rotary": [*GPT2, "--position_embedding_type", "rotary"],
    "rotary+qk_norm": [*GPT2, "--position_embedding_type", "rotary", "--qk_norm", "true"],
    "rotary+relu2": [*GPT2, "--position_embedding_type", "rotary", "--hidden_act", "relu2"],
    "rotary+zero_init": [*GPT2, "--position_embedding_type", "rotary", "--zero_init_residual", "true"],
    "rotary+untied": [*GPT2, "--position_embedding_type", "rotary", "--tie_word_embeddings", "false"],
    "all": ["--position_embedding_type", "rotary", "--qk_norm", "true", "--hidden_act", "relu2",
            "--zero_init_residual", "true", "--tie_word_embeddings", "false"],
    "default": [],  # the recipe as it ships: the options that won alone, together (not the untied head)
}


def main():
    from hfmicro.training.hardware import machine_description

    args = variant_arguments(__doc__, VARIANTS)
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  recipes/microgpt-cpu.yaml {' '.join(args.extra)}")
    print(f"{'variant':<18} {'params':>10} {'minutes':>8} {'eval loss':>9} {'next-token acc':>14} "
          f"{'rep. 4-grams':>12} {'distinct-2':>10}", flush=True)
    rows = []
    for name in args.only or VARIANTS:
        with recipe_variant("clm", [*VARIANTS[name], *args.extra]) as (out, minutes, r, params):
            rep = repetition_of(out)
        row = {"variant": name, "flags": VARIANTS[name], "parameters": params, "minutes": round(minutes, 1),
               "eval_loss": r["eval_loss"], "eval_accuracy": r["eval_accuracy"], **rep}
        rows.append(row)
        print(f"{name:<18} {params:>10,} {minutes:>8.1f} {r['eval_loss']:>9.3f} {r['eval_accuracy']:>14.1%} "
              f"{rep['repeated_4grams']:>12.1%} {rep['distinct_2']:>10.2f}", flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
