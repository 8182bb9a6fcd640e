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

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..objectives import objective_named

TOKENIZE_BATCH = 1000  # documents per tokenizer call: large enough for the Rust tokenizer's threads
# A tokenizer holds ~80 bytes per token of a text it encodes (ids, offsets, token strings), so a 50 MB
# single-line document took ~7 GB. Long texts go in pieces, at most TOKENIZE_CHARS characters per call.
MAX_PIECE_CHARS = 1 << 16
TOKENIZE_CHARS = 1 << 20
_LAST_WORD_START = re.compile(r".*\s(?=\S)", re.DOTALL)  # greedy: up to the last whitespace before a word


@dataclass
class PackSummary:
    """What one split became; filled while packing, stored with the cache entry."""

    documents: int = 0
    tokens: int = 0  # stream tokens: document tokens plus one separator per document
    blocks: int = 0
    dropped_tokens: int = 0
    empty_documents: int = 0
    bad_rows: int = 0
    bad_row_reasons: dict[str, int] = field(default_factory=dict)  # e.g. {"invalid UTF-8": 12}


@dataclass(frozen=True)
class BlockFormat:
    block_size: int
    separator_id: int
    prefix_id: int | None  # [CLS] at the start of every MLM block, None for CLM
    keep_partial_block: bool


def block_format(tokenizer, objective: str, max_seq_length: int, keep_partial_block: bool) -> BlockFormat:
    spec = objective_named(objective)
    separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if separator is None:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has neither a sep_token nor an eos_token to "
            "separate documents; add one (e.g. [SEP] or <|endoftext|>) when building the tokenizer."
        )
    prefix = getattr(tokenizer, spec.block_prefix) if spec.block_prefix else None
    return BlockFormat(max_seq_length, separator, prefix, keep_partial_block)


def text_pieces(text: str) -> list[str]:
    """`text` in pieces of at most MAX_PIECE_CHARS characters, each cut just before the whitespace that
    precedes a word, so a pre-tokenizer that splits there (byte-level BPE, WordPiece) gives the same
    tokens as for the whole text. A stretch without such a place (Chinese, Japanese) is cut at the limit."""
    limit = MAX_PIECE_CHARS
    pieces, start = [], 0
    while len(text) - start > limit:
        match = _LAST_WORD_START.match(text, start + 1, start + limit + 1)  # a cut at start+limit keeps <= limit
        cut = match.end() - 1 if match else start + limit
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _piece_batches(texts: list[str]) -> Iterator[tuple[list[int], list[str]]]:
    """(document index of each piece, pieces), at most TOKENIZE_CHARS characters per batch (or one piece)."""
    owners, pieces, chars = [], [], 0
    for i, text in enumerate(texts):
        for piece in text_pieces(text) if len(text) > MAX_PIECE_CHARS else (text,):
            if pieces and chars + len(piece) > TOKENIZE_CHARS:
                yield owners, pieces
                owners, pieces, chars = [], [], 0
            owners.append(i)
            pieces.append(piece)
            chars += len(piece)
    if pieces:
        yield owners, pieces


def token_ids(texts: list[str], tokenizer) -> list[np.ndarray]:
    """Token ids of each text (no special tokens), as int32 arrays; long texts are tokenised in pieces."""
    parts: list[list[np.ndarray]] = [[] for _ in texts]
    for owners, pieces in _piece_batches(texts):
        encoded = tokenizer(pieces, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
        for owner, ids in zip(owners, encoded["input_ids"]):
            parts[owner].append(np.asarray(ids, dtype=np.int32))
    return [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]


def tokenize_batch(texts: list[str], tokenizer, separator_id: int) -> list[np.ndarray]:
    """Token ids of each document followed by the separator (the tokenizer's own specials are not added)."""
    return [np.append(ids, np.int32(separator_id)) for ids in token_ids(texts, tokenizer)]


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

    def add(self, batch) -> np.ndarray | None:
        """The (n_blocks, block_size) blocks completed by a batch of token-id sequences, or None."""
        if len(batch) == 0:
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
