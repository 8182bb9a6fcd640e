"""What every `hfmicro` verb shares: a parser that shows its defaults (and takes --json), and one way to
answer: the result as one JSON object with --json, as text otherwise, and a bad option or input as one
`hfmicro: error:` line with exit code 2."""

import argparse
import json

from .errors import print_error


def add_verb(subparsers, name: str, handler, summary: str, description: str, json_output: bool = True):
    """The verb's parser, which runs `handler(args)`; returns it for the verb's own arguments."""
    parser = subparsers.add_parser(name, help=summary, description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=handler)
    return parser


def answer(args, compute, describe) -> int:
    """Run `compute()` and print its result: JSON with --json, else `describe(result)`. A ValueError (bad
    option, input or data) is one error line and exit code 2."""
    try:
        result = compute()
    except ValueError as err:
        return print_error(err)
    print(json.dumps(result, ensure_ascii=False) if args.json else describe(result))
    return 0
