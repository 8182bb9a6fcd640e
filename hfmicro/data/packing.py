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


def pack_blocks(
    token_batches: Iterable[list[list[int]]], fmt: BlockFormat, summary: PackSummary
) -> Iterator[np.ndarray]:
    """Blocks from batches of tokenised documents, in order: one (n_blocks, block_size) array per
    batch; a kept partial block comes last, as a (1, shorter) array."""
    has_prefix = fmt.prefix_id is not None
    body = fmt.block_size - has_prefix
    carry = np.empty(0, dtype=np.int64)

    def with_prefix(rows: np.ndarray) -> np.ndarray:
        summary.blocks += len(rows)
        return np.hstack([np.full((len(rows), 1), fmt.prefix_id), rows]) if has_prefix else rows

    for batch in token_batches:
        if not batch:
            continue
        summary.documents += len(batch)
        stream = np.concatenate([carry, *map(np.asarray, batch)])
        summary.tokens += len(stream) - len(carry)
        n_full = len(stream) // body
        carry = stream[n_full * body :]
        if n_full:
            yield with_prefix(stream[: n_full * body].reshape(n_full, body))
    if len(carry) and fmt.keep_partial_block:
        yield with_prefix(carry[None, :])
    else:
        summary.dropped_tokens = len(carry)


def mask_batch(batch: dict, indices: list[int], collator, special_ids: list[int], seed: int) -> dict:
    """Static MLM masking with the collator's own 80/10/10 rule, seeded by (seed, first row index) so
    the result does not depend on batch order or the number of processes."""
    ids = np.asarray(batch["input_ids"], dtype=np.int64)  # (batch, block_size): static masking keeps no partial block
    collator.generator = np.random.default_rng([seed, indices[0]])
    masked, labels = collator.numpy_mask_tokens(ids.copy(), special_tokens_mask=np.isin(ids, special_ids))
    return {"input_ids": masked.tolist(), "labels": labels.tolist()}
