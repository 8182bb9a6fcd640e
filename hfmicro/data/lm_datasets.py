"""`load_lm_datasets`: a `--dataset` spec → packed, cached train/validation splits for MLM or CLM."""

import datetime
import itertools
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from ..objectives import objective_named
from . import packing
from .arguments import DataArguments
from .cache import (
    ENTRY_FILE, building_entry, cache_key, clear, entry_path, read_entry, tokenizer_fingerprint, write_entry_metadata,
)
from .packing import BlockFormat, Packer, PackSummary, block_format, pack_blocks
from .report import DataError, ReadReport, describe_skipped
from .sources import iter_texts, source_fingerprint

logger = logging.getLogger("hfmicro.data")

SPLITS = ("train", "validation")
FORMAT_VERSION = 1  # bump when the packed layout changes, so old cache entries are not reused


@dataclass
class DataSummary:
    """What `load_lm_datasets` did; logged as one line."""

    dataset: str = ""
    cache: str = ""  # "hit", "miss" or "off (streaming)"
    path: str | None = None
    splits: dict[str, PackSummary] = field(default_factory=dict)
    bad_row_examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        if not self.splits:
            return f"data {self.dataset}: streamed, tokenised and packed while training reads it | cache {self.cache}"
        parts = [
            f"{name} {s.documents:,} docs, {s.tokens:,} tokens, {s.blocks:,} blocks, "
            f"{s.dropped_tokens:,} tokens dropped"
            for name, s in self.splits.items()
        ]
        where = f" ({self.path})" if self.path else ""
        return (
            f"data {self.dataset}: {' | '.join(parts)} | {self.describe_skipped()}, "
            f"{self.empty_documents:,} empty docs | cache {self.cache}{where}"
        )

    @property
    def bad_rows(self) -> int:
        return sum(s.bad_rows for s in self.splits.values())

    @property
    def empty_documents(self) -> int:
        return sum(s.empty_documents for s in self.splits.values())

    @property
    def bad_row_reasons(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for s in self.splits.values():
            for reason, n in s.bad_row_reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return reasons

    def describe_skipped(self) -> str:
        """"skipped 20 of 320 rows: 12 invalid UTF-8, 8 malformed JSON; first at f.jsonl:3 (...)"."""
        rows = sum(s.documents for s in self.splits.values()) + self.empty_documents + self.bad_rows
        return describe_skipped(self.bad_rows, rows, self.bad_row_reasons, next(iter(self.bad_row_examples), None))


def _text_kwargs(args: DataArguments) -> dict:
    return dict(
        dataset_config=args.dataset_config, text_column=args.text_column, streaming=args.streaming,
        validation_split_percentage=args.validation_split_percentage, txt_mode=args.txt_mode,
        max_documents=args.max_documents,
    )


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _tokenize_map(batch: dict, tokenizer, separator_id: int) -> dict:
    return {"input_ids": packing.tokenize_batch(batch["text"], tokenizer, separator_id)}


def _write_dataset(path: str, features, batches: Iterable[dict]):
    """Column batches → one Arrow file → a Dataset. The writer `Dataset.from_generator` uses, fed whole
    batches: 4x faster than its one-example-at-a-time encoding, and an empty split is simply empty."""
    from datasets import Dataset
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=features, path=path) as writer:
        for batch in batches:
            writer.write_batch(batch)
        writer.finalize()
    return Dataset.from_file(path)


def _build_split(args, tokenizer, fmt: BlockFormat, split: str, key: str, work: str, summary: DataSummary):
    import datasets

    ids = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))})
    report = ReadReport()
    texts = iter_texts(args.dataset, split, report=report, **_text_kwargs(args))
    texts = _write_dataset(
        os.path.join(work, f"{split}-text.arrow"), datasets.Features({"text": datasets.Value("string")}),
        ({"text": batch} for batch in _batched(texts, packing.TOKENIZE_BATCH)),
    )
    tokenized = texts.map(
        _tokenize_map, batched=True, batch_size=packing.TOKENIZE_BATCH, remove_columns=["text"],
        num_proc=args.preprocessing_num_workers, fn_kwargs=dict(tokenizer=tokenizer, separator_id=fmt.separator_id),
        features=ids, new_fingerprint=f"{key}-{split}-tokens", desc=f"Tokenising {split}",
    )
    pack = PackSummary(empty_documents=report.empty_documents, bad_rows=report.bad_rows,
                       bad_row_reasons=report.bad_row_reasons)
    # numpy, not Python lists: a 50 MB document is ~11M tokens, 44 MB as int32 but 400 MB as Python ints
    token_batches = (batch["input_ids"] for batch in tokenized.with_format("numpy").iter(batch_size=packing.TOKENIZE_BATCH))
    blocks = _write_dataset(
        os.path.join(work, f"{split}-blocks.arrow"), ids,
        ({"input_ids": list(rows)} for rows in pack_blocks(token_batches, fmt, pack)),
    )
    if args.static_masking:
        from transformers import DataCollatorForLanguageModeling

        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=args.mlm_probability, return_tensors="np")
        blocks = blocks.map(
            packing.mask_batch, batched=True, with_indices=True,
            fn_kwargs=dict(collator=collator, special_ids=tokenizer.all_special_ids, seed=args.masking_seed),
            features=datasets.Features({**ids, "labels": ids["input_ids"]}), new_fingerprint=f"{key}-{split}-masked",
            desc=f"Masking {split}",
        )
    summary.splits[split] = pack
    summary.bad_row_examples.extend(report.bad_row_examples[: 5 - len(summary.bad_row_examples)])
    return blocks


@dataclass
class StreamState:
    """A position in a streamed train split: in pass `passes` over the source, its first `documents`
    usable documents were read and the stream had made `blocks` blocks (counted over all passes), with
    `carry` tokens waiting for the next block. `skip_blocks` more blocks are dropped when it restarts."""

    passes: int = 0
    documents: int = 0
    blocks: int = 0
    carry: list[int] = field(default_factory=list)
    skip_blocks: int = 0


class StreamTracker:
    """Snapshots of a streamed train split, taken between tokenizer batches. The data loader runs
    ahead of training, so the position of a checkpoint (the blocks its steps consumed) is the newest
    snapshot at or before it, plus the blocks after it (`resume_state`). Restarting the stream there
    reads the documents before it again but tokenises and packs none of them: no batch is replayed."""

    def __init__(self, start: StreamState | None = None, keep: int = 4096):
        self.start = start or StreamState()
        self.snapshots: deque[StreamState] = deque(maxlen=keep)

    def resume_state(self, consumed_blocks: int) -> StreamState | None:
        for snapshot in reversed(self.snapshots):
            if snapshot.blocks <= consumed_blocks:
                return StreamState(snapshot.passes, snapshot.documents, snapshot.blocks, snapshot.carry,
                                   consumed_blocks - snapshot.blocks)
        return None


def _streamed_blocks(dataset: str, split: str, kwargs: dict, tokenizer, fmt: BlockFormat,
                     tracker: StreamTracker | None = None) -> Iterator[dict]:
    start = tracker.start if tracker is not None else StreamState()
    passes = start.passes
    texts = iter_texts(dataset, split, **kwargs)
    if start.documents:
        texts = itertools.islice(texts, start.documents, None)  # read again, but not tokenised
    packer = Packer(fmt, PackSummary(), start.carry)
    documents, blocks, skip = start.documents, start.blocks, start.skip_blocks
    for batch in _batched(texts, packing.TOKENIZE_BATCH):
        if tracker is not None:
            tracker.snapshots.append(StreamState(passes, documents, blocks, packer.carry.tolist()))
        rows = packer.add(packing.tokenize_batch(batch, tokenizer, fmt.separator_id))
        documents += len(batch)
        if rows is None:
            continue
        blocks += len(rows)
        for row in rows[skip:].tolist():
            yield {"input_ids": row}
        skip = max(0, skip - len(rows))
    if (rows := packer.finish()) is not None:
        blocks += len(rows)
        for row in rows[skip:].tolist():
            yield {"input_ids": row}
    if tracker is not None:  # the next pass starts at the first document, block numbers go on
        tracker.start = StreamState(passes=passes + 1, blocks=blocks)


def cache_inputs(args: DataArguments, tokenizer, objective: str) -> dict:
    """Everything that changes the packed output, and nothing else (not the worker count)."""
    inputs = dict(
        format=FORMAT_VERSION, source=source_fingerprint(args.dataset, args.dataset_config),
        text_column=args.text_column, txt_mode=args.txt_mode, max_samples=args.max_documents,
        validation_split_percentage=args.validation_split_percentage, tokenizer=tokenizer_fingerprint(tokenizer),
        objective=objective, max_seq_length=args.max_seq_length, keep_partial_block=args.keep_partial_block,
        static_masking=args.static_masking,
    )
    if args.static_masking:
        inputs.update(mlm_probability=args.mlm_probability, masking_seed=args.masking_seed)
    return inputs


def load_lm_datasets(data_args: DataArguments, tokenizer, objective: str, *, summary: DataSummary | None = None,
                     stream: StreamTracker | None = None):
    """Packed "train" and "validation" splits of `input_ids` blocks (plus `labels` with static masking).

    A DatasetDict read from the cache when the same inputs were prepared before; an
    IterableDatasetDict (tokenised on the fly, not cached) with `streaming`, whose train split starts at
    `stream.start` and records its position into `stream`.
    """
    import datasets

    fmt = block_format(tokenizer, objective, data_args.max_seq_length, data_args.keep_partial_block)
    if data_args.static_masking and not objective_named(objective).masked:
        raise ValueError(f"static_masking applies to masked language modelling, not to {objective}")
    summary = summary if summary is not None else DataSummary()
    summary.dataset = data_args.dataset
    if data_args.streaming:
        features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))})
        splits = datasets.IterableDatasetDict(
            {
                split: datasets.IterableDataset.from_generator(
                    _streamed_blocks, features=features,
                    gen_kwargs=dict(dataset=data_args.dataset, split=split, kwargs=_text_kwargs(data_args),
                                    tokenizer=tokenizer, fmt=fmt, tracker=stream if split == "train" else None),
                )
                for split in SPLITS
            }
        )
        summary.cache = "off (streaming)"
        logger.info(summary.line())
        return splits

    inputs = cache_inputs(data_args, tokenizer, objective)
    key = cache_key(inputs)
    if data_args.overwrite_cache:
        clear([key])
    metadata = read_entry(key)
    summary.cache = "hit" if metadata else "miss"
    if metadata is None:
        with building_entry(key) as entry, tempfile.TemporaryDirectory(dir=os.path.dirname(entry),
                                                                          prefix=f".{key}.work-") as work:
            built = datasets.DatasetDict(
                {split: _build_split(data_args, tokenizer, fmt, split, key, work, summary) for split in SPLITS}
            )
            if not summary.splits["train"].blocks:
                raise DataError(
                    f"{data_args.dataset}: the train split has {summary.splits['train'].tokens} tokens, "
                    f"less than one block of {data_args.max_seq_length}; use more data, a smaller "
                    "--max_seq_length or --keep_partial_block."
                )
            # an empty split needs an explicit shard, or datasets writes none and cannot load it back
            empty_splits = {name: 1 for name, split in built.items() if not len(split)}
            built.save_to_disk(entry, num_shards=empty_splits)
            metadata = dict(
                dataset=data_args.dataset, inputs=inputs, created=datetime.datetime.now().isoformat(timespec="seconds"),
                summary={name: asdict(s) for name, s in summary.splits.items()},
                bad_row_examples=summary.bad_row_examples,
            )
            write_entry_metadata(entry, metadata)
    else:
        summary.splits = {name: PackSummary(**s) for name, s in metadata["summary"].items()}
        summary.bad_row_examples = metadata["bad_row_examples"]
    summary.path = entry_path(key)
    logger.info(summary.line())
    return datasets.load_from_disk(summary.path)


def wait_for_prepared(data_args: DataArguments, tokenizer, objective: str, poll_seconds: float = 1.0) -> None:
    """Block until another process (the local main one, or `hfmicro data prepare`) has put the packed
    dataset for these options in the cache. A file-system wait, not a collective: it has no timeout,
    so a preparation longer than the distributed timeout cannot kill a multi-process launch."""
    import psutil

    key = cache_key(cache_inputs(data_args, tokenizer, objective))
    # with overwrite_cache, an entry older than this launch is the one being replaced
    newer_than = psutil.Process().create_time() - 60 if data_args.overwrite_cache else 0.0
    while True:
        try:
            if os.path.getmtime(os.path.join(entry_path(key), ENTRY_FILE)) >= newer_than and read_entry(key):
                return
        except OSError:
            pass
        time.sleep(poll_seconds)


def lm_data_collator(data_args: DataArguments, tokenizer, objective: str):
    """The collator that matches the packed blocks: MLM masks anew in every batch, as a pure function
    of (masking_seed, the batch) so a resumed run replays the same masks (collator.py); CLM copies
    inputs to labels; with static masking the labels are stored, so batches are only stacked."""
    from transformers import DataCollatorForLanguageModeling, default_data_collator

    from .collator import ReplayableMaskingCollator

    spec = objective_named(objective)
    if spec.masked and data_args.static_masking:
        return default_data_collator
    if spec.next_token and tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id:
        logger.warning(
            "pad_token == eos_token: the collator will hide every document-end token from the loss "
            "(the model never learns to stop); give the tokenizer its own pad token."
        )
    # pad_to_multiple_of=8 only matters for a kept partial block: tensor cores want multiples of 8
    if spec.masked:
        return ReplayableMaskingCollator(tokenizer, mlm_probability=data_args.mlm_probability, pad_to_multiple_of=8,
                                         masking_seed=data_args.masking_seed)
    return DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=8)
