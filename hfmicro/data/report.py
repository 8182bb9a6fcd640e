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


def exit_on_data_error(handler):
    """For CLI handlers: a DataError becomes one line on stderr and exit code 1, not a traceback."""
    import functools
    import sys

    @functools.wraps(handler)
    def wrapped(args) -> int:
        try:
            return handler(args)
        except DataError as err:
            print(f"hfmicro: error: {err}", file=sys.stderr)
            return 1

    return wrapped
