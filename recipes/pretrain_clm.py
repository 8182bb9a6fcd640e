"""Pre-train a MicroGPT (GPT-2 style) causal language model.

    accelerate launch recipes/pretrain_clm.py                                   # the default CPU recipe
    accelerate launch --config_file accelerate_configs/a10.yaml recipes/pretrain_clm.py \
        --config recipes/microgpt-8l-512d-a10.yaml [--any_field value ...]
    python recipes/pretrain_clm.py --help                                       # every option

`--config` gives defaults; flags override them. Resumes from the newest checkpoint in output_dir
unless --force_fresh. The logic lives in hfmicro/training/run.py.
"""

import sys

from hfmicro.training.run import main

if __name__ == "__main__":
    sys.exit(main("clm"))
