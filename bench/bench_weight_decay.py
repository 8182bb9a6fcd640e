"""The default MicroBERT recipe with weight decay on matrices and embeddings only (PretrainingTrainer's rule)
against Trainer's own rule (every parameter but biases and norms: value residual's 0-d mixing scalars too).

    python bench/bench_weight_decay.py --seeds 0 1      # ~8 minutes a run on 2 CPU cores, run it alone

Each run is the recipe's entry point in a fresh process (the rule of the second is Trainer's
`get_decay_parameter_names`, put back); held-out loss by `hfmicro evaluate` (fixed masks at 15 %), and the
mixing scalars' final values.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from recipe_runs import held_out_loss, write_rows

RUN = """
import sys
from transformers import Trainer
from hfmicro.training.run import main
from hfmicro.training.trainer import PretrainingTrainer
if sys.argv[1] == "trainer":
    PretrainingTrainer.get_decay_parameter_names = Trainer.get_decay_parameter_names
sys.exit(main("mlm", sys.argv[2:]))
"""
RULES = {"matrices": "matrices and embeddings only", "trainer": "Trainer's (scalars decayed too)"}


def main():
    from safetensors.torch import load_file

    from hfmicro.training.hardware import machine_description

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("extra", nargs="*", help="recipe flags added to every run (after --)")
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}  {machine_description()}  recipes/microbert-cpu.yaml {' '.join(args.extra)}",
          flush=True)
    rows = []
    for seed in args.seeds:
        for rule, name in RULES.items():
            with tempfile.TemporaryDirectory() as out:
                start = time.time()
                subprocess.run([sys.executable, "-c", RUN, rule, "--output_dir", out, "--report_to", "none", "--seed",
                                str(seed), *args.extra], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                weights = load_file(os.path.join(out, "model.safetensors"))
                row = {"rule": name, "seed": seed, "minutes": round((time.time() - start) / 60, 1),
                       "held_out_loss": held_out_loss(out, "mlm", 64),
                       "value_lambda": [round(float(weights[k]), 4) for k in sorted(weights) if k.endswith("value_lambda")]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
