"""Pre-train a MicroBERT masked language model.

    accelerate launch recipes/pretrain_mlm.py                                   # the default CPU recipe
    accelerate launch --config_file accelerate_configs/a10.yaml recipes/pretrain_mlm.py \
        --config recipes/microbert-8l-256d-a10.yaml [--any_field value ...]
    python recipes/pretrain_mlm.py --help                                       # every option

`--config` gives defaults; flags override them. Resumes from the newest checkpoint in output_dir
unless --force_fresh. The logic lives in hfmicro/training/run.py.
"""

import sys

from hfmicro.training.run import main

if __name__ == "__main__":
    sys.exit(main("mlm"))
