"""Local corpus files: resolving a path, glob or folder, and reading documents row by row.

A custom reader rather than `load_dataset("json"|"csv"|"text", ...)`: those builders stop the whole
run at the first malformed JSON line or invalid UTF-8 byte, while a corpus scraped from the web
always has a few. Here a bad row is skipped, counted and located (file:line), and every good row is
kept. Parquet is typed, so only its text column is checked row by row; it is read with pyarrow
(what `datasets` reads parquet with) one file and one record batch at a time, so every bad row can
name its file.
"""

import bz2
import csv
import glob
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from .report import DataError

FORMATS = (".txt", ".jsonl", ".json", ".csv", ".parquet")
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open}
TXT_MODES = ("auto", "paragraph", "line")
AUTO_SAMPLE_LINES = 10_000  # lines looked at to decide how an auto-mode .txt file splits into documents
_noted: set[str] = set()  # notes already printed (each corpus is read in several passes)


def note_once(message: str) -> None:
    """Print a one-line note about the corpus to stderr, once per process."""
    if message not in _noted:
        _noted.add(message)
        print(f"[hfmicro] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Row:
    """One row of a file: its text (or None when the row is bad), where it is, and why it is bad."""

    location: str
    text: str | None
    problem: str = ""


def file_format(path: str) -> tuple[str, str]:
    """('.jsonl', '.gz') for 'corpus.jsonl.gz'; the format is '' when the name says nothing we read."""
    stem, compression = path, ""
    for suffix in COMPRESSIONS:
        if path.endswith(suffix):
            stem, compression = path[: -len(suffix)], suffix
    ext = os.path.splitext(stem)[1].lower()
    return (ext if ext in FORMATS else ""), compression


def looks_local(spec: str) -> bool:
    """A spec is a local path when it exists, is a glob, or names a file format we read."""
    return (
        os.path.exists(spec)
        or any(c in spec for c in "*?[")
        or bool(file_format(spec)[0])
        or spec.startswith((".", "/", "~"))
    )


def resolve_files(spec: str) -> list[str]:
    """The sorted list of corpus files for a path, a glob or a folder (searched recursively)."""
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        candidates = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
        files = sorted(f for f in candidates if file_format(f)[0])
        where = f"folder {spec!r}"
    elif os.path.isfile(path):
        if not file_format(path)[0]:
            raise DataError(
                f"{spec}: cannot tell the format from the file name; "
                f"rename it to end in one of {', '.join(FORMATS)} (optionally + .gz or .bz2)."
            )
        return [path]
    else:
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f) and file_format(f)[0])
        where = f"pattern {spec!r}" if any(c in spec for c in "*?[") else f"path {spec!r}"
    if not files:
        raise DataError(
            f"no corpus files found at {where} (looked for {', '.join(FORMATS)}, optionally compressed); "
            "check the path, or use --dataset builtin for the offline corpus that ships with Python."
        )
    return files


def _open_binary(path: str, compression: str):
    return COMPRESSIONS[compression](path, "rb") if compression else open(path, "rb")


def _decode(raw: bytes) -> tuple[str | None, str]:
    if b"\0" in raw:
        return None, "binary data (NUL byte)"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as err:
        return None, f"invalid UTF-8 at byte {err.start}"


def _lines(path: str, compression: str) -> Iterator[tuple[int, str | None, str]]:
    """(line number, decoded line without its newline or None, problem) for every line."""
    with _open_binary(path, compression) as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark is not part of the text
            text, problem = _decode(raw.rstrip(b"\r\n"))
            yield number, text, problem


def _detect_txt_mode(path: str, compression: str) -> str:
    """'line' for a file whose first lines hold no blank line (one sentence or record per line, the most
    common plain corpus), else 'paragraph' (blank-line separated). Reported once per file."""
    blank = non_blank = 0
    for number, text, _ in _lines(path, compression):
        if text is None:
            continue  # a bad line says nothing about the layout
        if not text.strip():
            blank += 1
        else:
            non_blank += 1
        if number >= AUTO_SAMPLE_LINES or blank:
            break
    mode = "line" if non_blank > 1 and not blank else "paragraph"
    if mode == "line":
        note_once(f"{path}: no blank lines, so one document per line (--txt_mode paragraph reads blank-line "
                  "separated paragraphs)")
    return mode


def _read_txt(path: str, compression: str, txt_mode: str) -> Iterator[Row]:
    if txt_mode == "auto":
        txt_mode = _detect_txt_mode(path, compression)
    if txt_mode == "line":
        for number, text, problem in _lines(path, compression):
            yield Row(f"{path}:{number}", text, problem)
        return
    # paragraph mode: a document is a run of non-blank lines; one bad line spoils its paragraph
    start, lines, problem = 0, [], ""
    for number, text, line_problem in _lines(path, compression):
        if text is not None and not text.strip():
            if lines or problem:
                yield Row(f"{path}:{start}", None if problem else "\n".join(lines), problem)
            start, lines, problem = 0, [], ""
            continue
        start = start or number
        if text is None:
            problem = problem or f"{line_problem} (line {number})"
        else:
            lines.append(text)
    if lines or problem:
        yield Row(f"{path}:{start}", None if problem else "\n".join(lines), problem)


def _text_of(record, text_column: str) -> tuple[str | None, str]:
    if not isinstance(record, dict):
        return None, f"expected an object with a {text_column!r} field, got {type(record).__name__}"
    if text_column not in record:
        return None, f"no {text_column!r} field (fields: {', '.join(list(record)[:5])}); see --text_column"
    value = record[text_column]
    if not isinstance(value, str):
        return None, f"{text_column!r} is {type(value).__name__}, not a string"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # a JSON escape such as \ud800: valid JSON, not valid Unicode
            return None, f"{text_column!r} holds an escape that is not valid Unicode ({value[err.start]!r})"
    return value, ""


def _read_jsonl(path: str, compression: str, text_column: str) -> Iterator[Row]:
    for number, line, problem in _lines(path, compression):
        location = f"{path}:{number}"
        if line is None:
            yield Row(location, None, problem)
        elif not line.strip():
            continue  # a blank line is no record (an empty "text" value is an empty document)
        else:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield Row(location, None, f"malformed JSON ({err.msg} at column {err.colno})")
                continue
            yield Row(location, *_text_of(record, text_column))


def _read_json(path: str, compression: str, text_column: str) -> Iterator[Row]:
    """A .json file is either one JSON array of records (read whole) or JSON lines."""
    with _open_binary(path, compression) as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        yield from _read_jsonl(path, compression, text_column)
        return
    with _open_binary(path, compression) as f:
        text, problem = _decode(f.read())
    try:
        records = json.loads(text) if text is not None else None
    except json.JSONDecodeError as err:
        problem = f"malformed JSON array ({err.msg} at line {err.lineno})"
    if text is None or problem:
        yield Row(path, None, problem)
        return
    for index, record in enumerate(records):
        yield Row(f"{path}[{index}]", *_text_of(record, text_column))


def _read_csv(path: str, compression: str, text_column: str) -> Iterator[Row]:
    # surrogateescape keeps undecodable bytes visible as lone surrogates, so a row with invalid
    # UTF-8 is reported as bad instead of failing the whole file or being silently repaired
    csv.field_size_limit(1 << 30)  # default 128 kB would reject long documents
    with _open_binary(path, compression) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or text_column not in header:
            yield Row(path, None, f"no {text_column!r} column in the header {header}; see --text_column")
            return
        column = header.index(text_column)
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield Row(f"{path}:{line}", None, f"malformed CSV ({err})")
                continue
            value = fields[column] if column < len(fields) else None
            if value is None:
                yield Row(f"{path}:{line}", None, f"only {len(fields)} fields, no {text_column!r} value")
            elif "\0" in value or any("\udc80" <= c <= "\udcff" for c in value):
                yield Row(f"{path}:{line}", None, "invalid UTF-8 or binary data")
            else:
                yield Row(f"{path}:{line}", value)


def _read_parquet(path: str, text_column: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_column not in parquet.schema_arrow.names:
        yield Row(path, None, f"no {text_column!r} column (columns: {parquet.schema_arrow.names}); see --text_column")
        return
    index = 0
    for batch in parquet.iter_batches(columns=[text_column], batch_size=1024):
        for value in batch.column(0).to_pylist():
            index += 1
            if isinstance(value, str):
                yield Row(f"{path}:row {index}", value)
            else:
                yield Row(f"{path}:row {index}", None, f"{text_column!r} is {type(value).__name__}, not a string")


def read_file(path: str, *, text_column: str = "text", txt_mode: str = "auto") -> Iterator[Row]:
    """Every row of one corpus file, good or bad, in file order."""
    fmt, compression = file_format(path)
    if fmt == ".txt":
        return _read_txt(path, compression, txt_mode)
    if fmt == ".jsonl":
        return _read_jsonl(path, compression, text_column)
    if fmt == ".json":
        return _read_json(path, compression, text_column)
    if fmt == ".csv":
        return _read_csv(path, compression, text_column)
    if compression:
        raise DataError(f"{path}: compressed parquet is not supported; parquet compresses internally.")
    return _read_parquet(path, text_column)
