"""Pre-train a MicroBERT masked language model.

    accelerate launch recipes/pretrain_mlm.py                                   # the default CPU recipe
    accelerate launch --config_file accelerate_configs/a10.yaml recipes/pretrain_mlm.py \
        --config recipes/microbert-8l-256d-a10.yaml [--any_field value ...]
    python recipes/pretrain_mlm.py --help                                       # every option

`--config` gives defaults; flags override them. Resumes from the newest checkpoint in output_dir
unless --force_fresh. The logic lives in hfmicro/training/run.py.
"""

import os
import sys

from hfmicro.training.run import pretrain

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "microbert-cpu.yaml")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and "-h" not in argv and "--help" not in argv:
        argv = ["--config", os.path.relpath(DEFAULT_RECIPE), *argv]
    return pretrain("mlm", argv)


if __name__ == "__main__":
    sys.exit(main())
