"""Tokenise documents and pack them into fixed-length blocks, optionally with static MLM masking.

The token stream of a split is `doc1 SEP doc2 SEP ...`, SEP being the tokenizer's separator
([SEP] for BERT-style tokenizers, <|endoftext|> for GPT-style). Blocks are consecutive slices of
that stream, so no token is padding and no token is lost except in the last, partial block
(dropped unless `keep_partial_block`; the count is reported). For MLM with a tokenizer that has a
[CLS] token, every block is `[CLS]` + the next max_seq_length - 1 stream tokens: the same shape as
the tokenizer's own `[CLS] text [SEP]` inputs that fine-tuning will feed the model.

Packing is sequential by nature (a block spans documents and map batches), so it is a generator
over batches of tokenised documents rather than a `map`; tokenisation itself is a batched `map`.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

TOKENIZE_BATCH = 1000  # documents per tokenizer call: large enough for the Rust tokenizer's threads


@dataclass
class PackSummary:
    """What one split became; filled while packing, stored with the cache entry."""

    documents: int = 0
    tokens: int = 0  # stream tokens: document tokens plus one separator per document
    blocks: int = 0
    dropped_tokens: int = 0
    empty_documents: int = 0
    bad_rows: int = 0


@dataclass(frozen=True)
class BlockFormat:
    block_size: int
    separator_id: int
    prefix_id: int | None  # [CLS] at the start of every MLM block, None for CLM
    keep_partial_block: bool


def block_format(tokenizer, objective: str, max_seq_length: int, keep_partial_block: bool) -> BlockFormat:
    if objective not in ("mlm", "clm"):
        raise ValueError(f"objective must be 'mlm' or 'clm', got {objective!r}")
    separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if separator is None:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has neither a sep_token nor an eos_token to "
            "separate documents; add one (e.g. [SEP] or <|endoftext|>) when building the tokenizer."
        )
    prefix = tokenizer.cls_token_id if objective == "mlm" else None
    return BlockFormat(max_seq_length, separator, prefix, keep_partial_block)


def tokenize_batch(texts: list[str], tokenizer, separator_id: int) -> list[list[int]]:
    """Token ids of each document followed by the separator (the tokenizer's own specials are not added)."""
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    return [ids + [separator_id] for ids in encoded["input_ids"]]


class Packer:
    """The packing state of one split: `add` a batch of tokenised documents, get the blocks it completes;
    `carry` holds the stream tokens waiting for the next block. A streamed run saves (documents read,
    blocks made, carry) to resume the stream where a checkpoint left it."""

    def __init__(self, fmt: BlockFormat, summary: PackSummary, carry=()):
        self.fmt, self.summary = fmt, summary
        self.body = fmt.block_size - (fmt.prefix_id is not None)
        self.carry = np.asarray(carry, dtype=np.int64)

    def _with_prefix(self, rows: np.ndarray) -> np.ndarray:
        self.summary.blocks += len(rows)
        if self.fmt.prefix_id is None:
            return rows
        return np.hstack([np.full((len(rows), 1), self.fmt.prefix_id), rows])

    def add(self, batch: list[list[int]]) -> np.ndarray | None:
        """The (n_blocks, block_size) blocks completed by this batch, or None."""
        if not batch:
            return None
        self.summary.documents += len(batch)
        stream = np.concatenate([self.carry, *map(np.asarray, batch)])
        self.summary.tokens += len(stream) - len(self.carry)
        n_full = len(stream) // self.body
        self.carry = stream[n_full * self.body :]
        return self._with_prefix(stream[: n_full * self.body].reshape(n_full, self.body)) if n_full else None

    def finish(self) -> np.ndarray | None:
        """The kept partial block as a (1, shorter) array, or None (its tokens counted as dropped)."""
        if len(self.carry) and self.fmt.keep_partial_block:
            return self._with_prefix(self.carry[None, :])
        self.summary.dropped_tokens = len(self.carry)
        return None


def pack_blocks(
    token_batches: Iterable[list[list[int]]], fmt: BlockFormat, summary: PackSummary
) -> Iterator[np.ndarray]:
    """Blocks from batches of tokenised documents, in order: one (n_blocks, block_size) array per
    batch; a kept partial block comes last, as a (1, shorter) array."""
    packer = Packer(fmt, summary)
    for batch in token_batches:
        if (rows := packer.add(batch)) is not None:
            yield rows
    if (rows := packer.finish()) is not None:
        yield rows


def mask_batch(batch: dict, indices: list[int], collator, special_ids: list[int], seed: int) -> dict:
    """Static MLM masking with the collator's own 80/10/10 rule, seeded by (seed, first row index) so
    the result does not depend on batch order or the number of processes."""
    ids = np.asarray(batch["input_ids"], dtype=np.int64)  # (batch, block_size): static masking keeps no partial block
    collator.generator = np.random.default_rng([seed, indices[0]])
    masked, labels = collator.numpy_mask_tokens(ids.copy(), special_tokens_mask=np.isin(ids, special_ids))
    return {"input_ids": masked.tolist(), "labels": labels.tolist()}
