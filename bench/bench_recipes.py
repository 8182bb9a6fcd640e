"""The default MicroBERT recipe against the variants it was chosen over (README, "The default recipes").

    python bench/bench_recipes.py                 # every variant, ~8 minutes each on 2 CPU cores
    python bench/bench_recipes.py --only default  # one of them
    python bench/bench_recipes.py -- --hidden_act gelu --qk_norm false --value_residual false --head_act gelu \
        --learning_rate 2e-3                      # without the speedrun options, as the README's table measured

Each variant is the real command (`recipes/pretrain_mlm.py`, i.e. recipes/microbert-cpu.yaml plus the
flags below) in a fresh output folder; the table comes from each run's eval_results.json: eval loss,
masked-token accuracy, and the content-word probe (top-1 / top-5) next to the unigram baseline.
"""

import time

from recipe_runs import recipe_variant, variant_arguments

VARIANTS = {
    "absolute-b32x128": ["--position_embedding_type", "absolute", "--max_seq_length", "128",
                         "--per_device_train_batch_size", "32", "--max_steps", "600", "--eval_steps", "100",
                         "--save_steps", "100"],
    "absolute": ["--position_embedding_type", "absolute"],
    "default": [],
    "mask-15": ["--mlm_probability", "0.15"],
}


def main():
    from hfmicro.training.hardware import machine_description

    args = variant_arguments(__doc__, VARIANTS)

    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  {' '.join(args.extra)}")
    print(f"{'variant':<18} {'tokens':>10} {'minutes':>8} {'eval loss':>9} {'masked acc':>10} {'probe top-1/5':>14} "
          f"{'unigram top-1/5':>16}")
    for name in args.only or VARIANTS:
        with recipe_variant("mlm", [*args.extra, *VARIANTS[name]]) as (_, minutes, r, _):
            pass
        print(f"{name:<18} {r['tokens_seen']:>10,} {minutes:>8.1f} {r['eval_loss']:>9.2f} {r['eval_accuracy']:>10.1%} "
              f"{r['probe_top1']:>6.1%} / {r['probe_top5']:<6.1%} {r['unigram_top1']:>7.1%} / {r['unigram_top5']:<6.1%}",
              flush=True)


if __name__ == "__main__":
    main()
