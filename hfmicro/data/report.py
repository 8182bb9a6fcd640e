"""What reading a corpus found: the error users see, and the counts every reader fills in."""

from dataclasses import dataclass, field


class DataError(ValueError):
    """A problem with the user's data or data options; the message says what, where, and what to do."""


MAX_EXAMPLES = 5  # bad-row locations kept for the message; the count covers them all


@dataclass
class ReadReport:
    """Counts of one pass over a corpus. `documents` are the usable ones that were yielded."""

    documents: int = 0
    characters: int = 0
    empty_documents: int = 0
    bad_rows: int = 0
    bad_row_examples: list[str] = field(default_factory=list)

    def add_bad_row(self, location: str, reason: str) -> None:
        self.bad_rows += 1
        if len(self.bad_row_examples) < MAX_EXAMPLES:
            self.bad_row_examples.append(f"{location}: {reason}")

    def describe_bad_rows(self) -> str:
        """One line for logs: how many rows were skipped and where the first ones are."""
        if not self.bad_rows:
            return "no bad rows"
        more = ", ..." if self.bad_rows > len(self.bad_row_examples) else ""
        return f"skipped {self.bad_rows} bad rows ({'; '.join(self.bad_row_examples)}{more})"


EXIT_USAGE = 2  # a bad option, input or data: nothing was done


def print_error(err) -> int:
    """The one way every entry point (recipes, train_bpe.py, each `hfmicro` verb) reports a bad option,
    input or data: `hfmicro: error: ...` as one line on stderr. Returns the exit code, 2."""
    import sys

    print(f"hfmicro: error: {err}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def exit_on_data_error(handler):
    """For CLI handlers: a DataError becomes one `hfmicro: error:` line and exit code 2, not a traceback."""
    import functools

    @functools.wraps(handler)
    def wrapped(args) -> int:
        try:
            return handler(args)
        except DataError as err:
            return print_error(err)

    return wrapped
