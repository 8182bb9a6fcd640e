"""Pre-train a MicroGPT (GPT-2 style) causal language model: recipes/pretrain_mlm.py's options and behaviour,
with the MicroGPT recipes (recipes/microgpt-*.yaml; without --config, recipes/microgpt-cpu.yaml).

    accelerate launch --config_file accelerate_configs/t4x2.yaml recipes/pretrain_clm.py \
        --config recipes/microgpt-8l-512d-t4x2.yaml [--any_field value ...]
"""

import sys

from hfmicro.training.run import main

if __name__ == "__main__":
    sys.exit(main("clm"))
