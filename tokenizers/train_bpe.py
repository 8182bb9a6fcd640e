"""Train a byte-level BPE tokenizer that `AutoTokenizer.from_pretrained(output_dir)` loads.

Usage (from the repository root; this made tokenizers/microbert-8k):

    python tokenizers/train_bpe.py --dataset builtin --vocab_size 8000 --model_type bert \
        --output_dir tokenizers/microbert-8k

Same as `hfmicro train-bpe ...`; the logic is in hfmicro/bpe.py. This folder has no __init__.py on
purpose: as a package it would shadow the `tokenizers` library. Python puts this folder first on
sys.path when running the script, which is harmless because it holds no `tokenizers` module.
"""

import argparse
import sys

from hfmicro.bpe import add_arguments, run


def main(argv=None) -> int:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
