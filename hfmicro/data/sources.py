"""One `--dataset` spec → documents: `builtin`, local files (path, glob or folder) or a Hub name.

Every consumer (packing, stats, the BPE trainer) reads through `iter_rows` / `iter_texts`, so
bad rows and empty documents are handled the same way everywhere.

Splits: the Hub dataset's own validation split when it has one. Otherwise a document goes to
validation when a hash of its text falls in the first `validation_split_percentage` percent: the
split is deterministic, needs no shuffle buffer (it works on streams), and keeps exact duplicates
on the same side.
"""

from collections.abc import Iterator

from .builtin import VALIDATION_PER_MILLE, builtin_documents, builtin_fingerprint, in_hash_validation
from .files import Row, looks_local, note_once, read_file, resolve_files
from .report import DataError, ReadReport

SPLITS = ("train", "validation", "all")


def _builtin_rows() -> Iterator[Row]:
    for index, text in enumerate(builtin_documents()):
        yield Row(f"builtin:{index}", text)


def _file_rows(spec: str, text_column: str, txt_mode: str) -> Iterator[Row]:
    """Rows of every file of `spec`. In a corpus of several files, an empty, unreadable or truncated
    one is skipped with a note naming it; only a corpus without any usable document is an error."""
    files = resolve_files(spec)
    usable_in_corpus = 0
    for path in files:
        usable, problem = 0, ""
        try:
            for row in read_file(path, text_column=text_column, txt_mode=txt_mode):
                usable += bool(row.text and row.text.strip())
                yield row
        except (OSError, EOFError) as err:  # truncated .gz, unreadable file
            problem = f"cannot read the file ({err})"
        except Exception as err:
            if not type(err).__module__.startswith("pyarrow"):
                raise
            problem = f"not a readable parquet file ({err})"  # not parquet, or a damaged one
        usable_in_corpus += usable
        if not usable and not problem:
            problem = ("no usable documents (every row was empty or bad). Check that it is a text corpus in the "
                       f"format its name says, and the text column (--text_column {text_column!r})")
        if problem and len(files) == 1:
            raise DataError(f"{path}: {problem}.")
        if problem:
            note_once(f"warning: {path}: {problem}; skipped" if not usable else
                      f"warning: {path}: {problem}; kept its first {usable:,} documents")
    if not usable_in_corpus:
        raise DataError(f"{spec}: none of its {len(files)} files holds a usable document.")


def _hub_rows(name: str, config: str | None, split: str, text_column: str, streaming: bool) -> Iterator[Row]:
    from .hub import load_hub_dataset

    splits = load_hub_dataset(name, config, streaming=streaming)
    if "train" not in splits:
        raise DataError(f"dataset {name!r} has no 'train' split (it has: {', '.join(splits)}).")
    wanted = ["train"] if split == "train" or "validation" not in splits else ["validation"]
    if split == "all":
        wanted = [s for s in ("train", "validation") if s in splits]
    for split_name in wanted:
        columns = splits[split_name].column_names
        if columns is not None and text_column not in columns:
            raise DataError(
                f"dataset {name!r} split {split_name!r} has no {text_column!r} column "
                f"(columns: {', '.join(columns)}); pass --text_column."
            )
        for index, record in enumerate(splits[split_name]):
            value = record.get(text_column)
            location = f"{name}/{split_name}:{index}"
            if isinstance(value, str):
                yield Row(location, value)
            else:
                yield Row(location, None, f"{text_column!r} is {type(value).__name__}, not a string")


def hub_has_validation(name: str, config: str | None) -> bool:
    from .hub import load_hub_dataset

    return "validation" in load_hub_dataset(name, config, streaming=True)


def iter_rows(
    dataset: str = "builtin",
    split: str = "all",
    *,
    dataset_config: str | None = None,
    text_column: str = "text",
    streaming: bool = True,
    validation_split_percentage: float = 5.0,
    txt_mode: str = "auto",
) -> Iterator[Row]:
    """Rows of one split, bad and empty ones included (each with its location)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    per_mille = 10 * validation_split_percentage
    hub_split = False
    if dataset == "builtin":
        rows, per_mille = _builtin_rows(), VALIDATION_PER_MILLE
    elif looks_local(dataset):
        rows = _file_rows(dataset, text_column, txt_mode)
    else:
        hub_split = split == "all" or hub_has_validation(dataset, dataset_config)
        rows = _hub_rows(dataset, dataset_config, split, text_column, streaming)
    if hub_split:
        return rows  # the Hub's own splits
    return _hash_split(rows, split, per_mille)


def _hash_split(rows: Iterator[Row], split: str, per_mille: float) -> Iterator[Row]:
    for row in rows:
        if not (row.text and row.text.strip()):
            if split != "validation":
                yield row  # bad and empty rows belong to no split; counted once, with train
        elif split == "all":
            yield row
        elif in_hash_validation(row.text, per_mille) == (split == "validation"):
            yield row


def iter_texts(
    dataset: str = "builtin",
    split: str = "train",
    *,
    dataset_config: str | None = None,
    text_column: str = "text",
    max_bytes: int | None = None,
    max_documents: int | None = None,
    streaming: bool = True,
    validation_split_percentage: float = 5.0,
    txt_mode: str = "auto",
    report: ReadReport | None = None,
) -> Iterator[str]:
    """Usable documents of one split as strings, streamed (a 50 GB corpus is never held in memory).

    Bad rows and empty documents are skipped and counted into `report`. Stops after `max_bytes`
    UTF-8 bytes (the document that crosses the limit is the last one) or `max_documents` documents.
    Local files and `builtin` are always read lazily; `streaming` matters for Hub datasets only
    (stream rows instead of downloading and preparing the whole dataset first).
    """
    report = report if report is not None else ReadReport()
    n_bytes = 0
    rows = iter_rows(
        dataset, split, dataset_config=dataset_config, text_column=text_column, streaming=streaming,
        validation_split_percentage=validation_split_percentage, txt_mode=txt_mode,
    )
    for row in rows:
        if row.text is None:
            report.add_bad_row(row.location, row.problem)
            continue
        if not row.text.strip():
            report.empty_documents += 1
            continue
        if max_documents is not None and report.documents >= max_documents:
            return
        report.documents += 1
        report.characters += len(row.text)
        yield row.text
        n_bytes += len(row.text.encode("utf-8"))
        if max_bytes is not None and n_bytes >= max_bytes:
            return


def source_fingerprint(dataset: str, dataset_config: str | None) -> dict:
    """What identifies the source's content, for the cache key: corpus hash, file hashes, or Hub revision."""
    import hashlib
    import os

    if dataset == "builtin":
        return {"builtin": builtin_fingerprint()}
    if looks_local(dataset):
        files = {}
        for path in resolve_files(dataset):
            digest = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            files[os.path.abspath(path)] = digest.hexdigest()
        return {"files": files}
    from .hub import _check_reachable

    _check_reachable(dataset)
    from huggingface_hub import HfApi, is_offline_mode

    revision = None
    if not is_offline_mode():
        try:
            revision = HfApi().dataset_info(dataset).sha
        except Exception as err:
            raise DataError(f"cannot find dataset {dataset!r} on the Hub ({type(err).__name__}: {err}).") from None
    return {"hub": dataset, "config": dataset_config, "revision": revision}
