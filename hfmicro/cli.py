"""The `hfmicro` console command: one verb per sub-command, each defined next to the code it drives.

Every verb module exposes `register(subparsers)` and keeps heavy imports inside its handler, so
`hfmicro --help` stays fast.
"""

import argparse
import importlib
import sys

# verb modules, in the order `hfmicro --help` lists them
VERB_MODULES = [
    "hfmicro.presets",
    "hfmicro.bpe",
    "hfmicro.data.stats",
    "hfmicro.data.cache",
    "hfmicro.estimate",
    "hfmicro.evaluation",
    "hfmicro.inference",
    "hfmicro.compare",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfmicro", description="Pre-train tiny BERT and GPT-2 models.")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    if getattr(args, "pass_rest", False):  # a verb that takes any recipe field (`estimate`)
        return args.func(args, rest) or 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
