"""What reading a corpus found: the error users see, and the counts every reader fills in."""

from dataclasses import dataclass, field


class DataError(ValueError):
    """A problem with the user's data or data options; the message says what, where, and what to do."""


MAX_EXAMPLES = 5  # bad-row locations kept for the message; the count covers them all

# Why rows are skipped, as the readers word it (hfmicro/data/files.py) -> the reason counted in summaries.
_REASONS = (
    ("invalid UTF-8", "invalid UTF-8"),
    ("binary data", "binary data"),
    ("not valid Unicode", "invalid Unicode escape"),
    ("malformed JSON", "malformed JSON"),
    ("malformed CSV", "malformed CSV"),
    ("not a string", "text not a string"),
    ("expected an object", "text not a string"),
    ("field", "missing text"),
    ("column", "missing text"),
)


def reason_of(problem: str) -> str:
    """The short reason a bad row is counted under, e.g. "malformed JSON (Expecting value at column 3)"
    -> "malformed JSON"."""
    return next((reason for phrase, reason in _REASONS if phrase in problem), problem.split(" (")[0])


def describe_skipped(bad_rows: int, rows: int, reasons: dict[str, int], first: str | None) -> str:
    """"skipped 20 of 320 rows: 12 invalid UTF-8, 8 malformed JSON; first at f.jsonl:3 (invalid UTF-8 ...)"."""
    if not bad_rows:
        return f"no bad rows among {rows:,}"
    counts = ", ".join(f"{n:,} {reason}" for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    where = ""
    if first:
        location, _, problem = first.partition(": ")
        where = f"; first at {location} ({problem})"
    return f"skipped {bad_rows:,} of {rows:,} rows: {counts}{where}"


@dataclass
class ReadReport:
    """Counts of one pass over a corpus. `documents` are the usable ones that were yielded."""

    documents: int = 0
    characters: int = 0
    empty_documents: int = 0
    bad_rows: int = 0
    bad_row_reasons: dict[str, int] = field(default_factory=dict)
    bad_row_examples: list[str] = field(default_factory=list)

    def add_bad_row(self, location: str, problem: str) -> None:
        self.bad_rows += 1
        reason = reason_of(problem)
        self.bad_row_reasons[reason] = self.bad_row_reasons.get(reason, 0) + 1
        if len(self.bad_row_examples) < MAX_EXAMPLES:
            self.bad_row_examples.append(f"{location}: {problem}")

    def describe_bad_rows(self) -> str:
        """One line for logs: how many rows were skipped, why, and where the first one is."""
        rows = self.documents + self.empty_documents + self.bad_rows
        return describe_skipped(self.bad_rows, rows, self.bad_row_reasons, next(iter(self.bad_row_examples), None))


def exit_on_data_error(handler):
    """For CLI handlers: a DataError becomes one `hfmicro: error:` line and exit code 2, not a traceback."""
    import functools

    from ..errors import print_error

    @functools.wraps(handler)
    def wrapped(args) -> int:
        try:
            return handler(args)
        except DataError as err:
            return print_error(err)

    return wrapped
