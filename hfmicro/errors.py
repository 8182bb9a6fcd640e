"""How every entry point (the recipes, tokenizers/train_bpe.py, each `hfmicro` verb) reports a bad option,
input or data: one `hfmicro: error: ...` line on stderr and exit code 2, never a traceback."""

import sys

EXIT_USAGE = 2  # a bad option, input or data: nothing was done


def first_line(err: BaseException) -> str:
    """An exception's first line (library errors often add pages of context), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def print_error(err) -> int:
    """`hfmicro: error: ...` as one line on stderr. Returns the exit code, 2."""
    print(f"hfmicro: error: {err}", file=sys.stderr, flush=True)
    return EXIT_USAGE
