"""Pre-train a MicroGPT (GPT-2 style) causal language model.

    accelerate launch recipes/pretrain_clm.py                                   # the default CPU recipe
    accelerate launch --config_file accelerate_configs/a10.yaml recipes/pretrain_clm.py \
        --config recipes/microgpt-8l-512d-a10.yaml [--any_field value ...]
    python recipes/pretrain_clm.py --help                                       # every option

`--config` gives defaults; flags override them. Resumes from the newest checkpoint in output_dir
unless --force_fresh. The logic lives in hfmicro/training/run.py.
"""

import os
import sys

from hfmicro.training.run import pretrain

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "microgpt-cpu.yaml")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and "-h" not in argv and "--help" not in argv:
        argv = ["--config", os.path.relpath(DEFAULT_RECIPE), *argv]
    return pretrain("clm", argv)


if __name__ == "__main__":
    sys.exit(main())
