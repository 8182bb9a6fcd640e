"""Packing, static masking and the cache of `load_lm_datasets`."""

import json

import numpy as np
import pytest

from hfmicro.data import DataArguments, DataError, DataSummary, lm_data_collator, load_lm_datasets, packing
from hfmicro.data import cache as data_cache

DOCS = [f"Document {i} says something about topic {i % 7}, then stops." * (1 + i % 3) for i in range(60)]


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS), encoding="utf-8")
    return str(path)


def load(tokenizer, objective, **kwargs):
    summary = DataSummary()
    kwargs.setdefault("validation_split_percentage", 0)
    splits = load_lm_datasets(DataArguments(**kwargs), tokenizer, objective, summary=summary)
    return splits, summary


def stream_of(tokenizer, docs, separator):
    return [t for d in docs for t in tokenizer(d, add_special_tokens=False)["input_ids"] + [separator]]


def test_clm_blocks_are_the_token_stream_cut_exactly(corpus, gpt_tokenizer):
    splits, summary = load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16)
    blocks = splits["train"]["input_ids"]
    stream = stream_of(gpt_tokenizer, DOCS, gpt_tokenizer.eos_token_id)
    assert all(len(b) == 16 for b in blocks)
    assert [t for b in blocks for t in b] == stream[: len(blocks) * 16]
    train = summary.splits["train"]
    assert train.dropped_tokens == len(stream) % 16 and train.tokens == len(stream) and train.documents == len(DOCS)
    assert len(splits["validation"]) == 0


def test_mlm_blocks_start_with_cls_and_separate_with_sep(corpus, bert_tokenizer):
    splits, summary = load(bert_tokenizer, "mlm", dataset=corpus, max_seq_length=16)
    blocks = splits["train"]["input_ids"]
    stream = stream_of(bert_tokenizer, DOCS, bert_tokenizer.sep_token_id)
    assert all(len(b) == 16 and b[0] == bert_tokenizer.cls_token_id for b in blocks)
    assert [t for b in blocks for t in b[1:]] == stream[: len(blocks) * 15]
    assert summary.splits["train"].dropped_tokens == len(stream) % 15


def test_keep_partial_block_keeps_every_token(corpus, gpt_tokenizer):
    splits, summary = load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16, keep_partial_block=True)
    blocks = splits["train"]["input_ids"]
    stream = stream_of(gpt_tokenizer, DOCS, gpt_tokenizer.eos_token_id)
    assert [t for b in blocks for t in b] == stream
    assert len(blocks[-1]) == len(stream) % 16 and summary.splits["train"].dropped_tokens == 0


def test_too_little_text_for_one_block_is_a_data_error(tmp_path, gpt_tokenizer):
    path = tmp_path / "tiny.txt"
    path.write_text("just a few words\n", encoding="utf-8")
    with pytest.raises(DataError, match="less than one block"):
        load(gpt_tokenizer, "clm", dataset=str(path), max_seq_length=512)


def test_static_masking_is_deterministic_and_near_mlm_probability(corpus, bert_tokenizer, tmp_path, monkeypatch):
    kwargs = dict(dataset=corpus, max_seq_length=32, static_masking=True, masking_seed=3)
    first, _ = load(bert_tokenizer, "mlm", **kwargs)
    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path / "other-cache"))  # rebuilt from scratch
    second, summary = load(bert_tokenizer, "mlm", **kwargs)
    assert summary.cache == "miss"
    assert first["train"]["input_ids"] == second["train"]["input_ids"]
    assert first["train"]["labels"] == second["train"]["labels"]

    plain, _ = load(bert_tokenizer, "mlm", dataset=corpus, max_seq_length=32)
    original = np.array(plain["train"]["input_ids"])
    masked_ids, labels = np.array(first["train"]["input_ids"]), np.array(first["train"]["labels"])
    is_masked = labels != -100
    special = np.isin(original, bert_tokenizer.all_special_ids)
    assert not (is_masked & special).any()
    assert (labels[is_masked] == original[is_masked]).all()
    assert (masked_ids[~is_masked] == original[~is_masked]).all()
    assert abs(is_masked.sum() / (~special).sum() - 0.15) < 0.03
    replaced = masked_ids[is_masked] == bert_tokenizer.mask_token_id
    assert abs(replaced.mean() - 0.8) < 0.06

    other_seed, _ = load(bert_tokenizer, "mlm", **{**kwargs, "masking_seed": 4})
    assert other_seed["train"]["labels"] != first["train"]["labels"]


def test_second_load_is_a_cache_hit_without_tokenising(corpus, gpt_tokenizer, monkeypatch):
    first, summary = load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16)
    assert summary.cache == "miss"

    def no_tokenising(*args, **kwargs):
        raise AssertionError("tokenised although the packed dataset is cached")

    monkeypatch.setattr(packing, "tokenize_batch", no_tokenising)
    second, summary = load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16)
    assert summary.cache == "hit" and summary.splits["train"].documents == len(DOCS)
    assert second["train"]["input_ids"] == first["train"]["input_ids"]


def test_cache_key_follows_tokenizer_length_and_content(corpus, gpt_tokenizer, bert_tokenizer):
    base = DataArguments(dataset=corpus)
    key = data_cache.cache_key
    from hfmicro.data.lm_datasets import cache_inputs

    reference = key(cache_inputs(base, gpt_tokenizer, "clm"))
    more_workers = DataArguments(dataset=corpus, preprocessing_num_workers=2)
    assert key(cache_inputs(more_workers, gpt_tokenizer, "clm")) == reference
    assert key(cache_inputs(base, bert_tokenizer, "clm")) != reference
    assert key(cache_inputs(DataArguments(dataset=corpus, max_seq_length=64), gpt_tokenizer, "clm")) != reference
    assert key(cache_inputs(DataArguments(dataset=corpus, keep_partial_block=True), gpt_tokenizer, "clm")) != reference
    assert key(cache_inputs(base, gpt_tokenizer, "mlm")) != reference
    with open(corpus, "a", encoding="utf-8") as f:
        f.write('{"text": "one more document"}\n')
    assert key(cache_inputs(base, gpt_tokenizer, "clm")) != reference


def test_a_killed_build_leaves_no_entry(corpus, gpt_tokenizer, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    real_tokenize = packing.tokenize_batch
    monkeypatch.setattr(packing, "tokenize_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16)
    assert data_cache.list_entries() == []
    monkeypatch.setattr(packing, "tokenize_batch", real_tokenize)
    _, summary = load(gpt_tokenizer, "clm", dataset=corpus, max_seq_length=16)
    assert summary.cache == "miss" and len(data_cache.list_entries()) == 1


def test_streaming_with_max_samples(tmp_path, gpt_tokenizer, monkeypatch):
    import datasets

    # IterableDataset.from_generator leaves empty lock files in the datasets cache: keep them in tmp_path
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"streamed document number {i} with some words\n" for i in range(500)), encoding="utf-8")
    splits, summary = load(
        gpt_tokenizer, "clm", dataset=str(path), txt_mode="line", streaming=True, max_samples="100", max_seq_length=8
    )
    assert summary.cache == "off (streaming)"
    blocks = [row["input_ids"] for row in splits["train"]]
    docs = [f"streamed document number {i} with some words" for i in range(100)]
    stream = stream_of(gpt_tokenizer, docs, gpt_tokenizer.eos_token_id)
    assert blocks == [stream[i : i + 8] for i in range(0, len(stream) - 7, 8)]


def test_collators_match_the_packed_data(corpus, bert_tokenizer, gpt_tokenizer):
    static_args = DataArguments(dataset=corpus, max_seq_length=16, static_masking=True, validation_split_percentage=0)
    static = load_lm_datasets(static_args, bert_tokenizer, "mlm")["train"]
    batch = lm_data_collator(static_args, bert_tokenizer, "mlm")([static[i] for i in range(4)])
    assert batch["labels"].tolist() == static["labels"][:4]  # stored masks are used as they are

    dynamic_args = DataArguments(dataset=corpus, max_seq_length=16, validation_split_percentage=0)
    blocks = load_lm_datasets(dynamic_args, bert_tokenizer, "mlm")["train"]
    batch = lm_data_collator(dynamic_args, bert_tokenizer, "mlm")([blocks[i] for i in range(32)])
    assert batch["input_ids"].shape == (32, 16) and 0 < (batch["labels"] != -100).float().mean() < 0.3

    blocks = load_lm_datasets(dynamic_args, gpt_tokenizer, "clm")["train"]
    batch = lm_data_collator(dynamic_args, gpt_tokenizer, "clm")([blocks[i] for i in range(4)])
    assert batch["labels"].tolist() == blocks["input_ids"][:4]


def test_a_stream_restarts_at_any_recorded_position_with_the_same_blocks(bert_tokenizer):
    """The streamed train split from a StreamTracker snapshot (+ blocks to skip) continues exactly like
    the stream read from the start, across the end of a pass."""
    from hfmicro.data import StreamTracker
    from hfmicro.data.lm_datasets import _streamed_blocks, _text_kwargs

    args = DataArguments(dataset="builtin", streaming=True, max_seq_length=32)
    fmt = packing.block_format(bert_tokenizer, "mlm", 32, False)
    full = StreamTracker()
    first = [b["input_ids"] for b in _streamed_blocks("builtin", "train", _text_kwargs(args), bert_tokenizer, fmt, full)]
    second = [b["input_ids"] for b in _streamed_blocks("builtin", "train", _text_kwargs(args), bert_tokenizer, fmt, full)]
    assert first == second and len(full.snapshots) >= 4
    assert full.snapshots[-1].passes == 1 and full.snapshots[-1].blocks >= len(first)  # numbering goes on
    in_pass = full.snapshots[1].blocks  # where the second tokenizer batch of a pass starts
    for consumed in (in_pass + 5, len(first) + in_pass + 7):
        position = full.resume_state(consumed)
        assert position.documents == 1000 and position.skip_blocks < 10
        resumed = StreamTracker(position)
        rest = [b["input_ids"] for b in _streamed_blocks("builtin", "train", _text_kwargs(args), bert_tokenizer, fmt,
                                                         resumed)]
        assert rest == (first + second)[consumed:len(first) * (1 + (consumed >= len(first)))]


class SpyTokenizer:
    """A tokenizer that records the longest text and the most characters it was handed in one call."""

    def __init__(self, tokenizer):
        self.tokenizer, self.longest, self.most_per_call = tokenizer, 0, 0

    def __call__(self, texts, **kwargs):
        batch = [texts] if isinstance(texts, str) else texts
        self.longest = max(self.longest, *map(len, batch))
        self.most_per_call = max(self.most_per_call, sum(map(len, batch)))
        return self.tokenizer(texts, **kwargs)


def huge_document(n_words: int = 4000) -> str:
    words = " ".join(DOCS).split()
    return " ".join(words[i % len(words)] for i in range(n_words)) + "\n\nThe end."


@pytest.fixture
def small_pieces(monkeypatch):
    """Piece and call limits 1000x smaller, so a 25 kB document stands for a 50 MB one."""
    monkeypatch.setattr(packing, "MAX_PIECE_CHARS", 64, raising=False)
    monkeypatch.setattr(packing, "TOKENIZE_CHARS", 1024, raising=False)


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_a_huge_document_is_tokenised_in_bounded_pieces_with_the_same_tokens(small_pieces, kind, request):
    tokenizer = request.getfixturevalue(f"{kind}_tokenizer")
    doc = huge_document()
    spy = SpyTokenizer(tokenizer)
    ids = packing.tokenize_batch(["Short one.", doc, "x"], spy, 0)
    # whole-document tokenisation and piecewise tokenisation agree token for token
    assert [list(map(int, d)) for d in ids] == [tokenizer(t, add_special_tokens=False)["input_ids"] + [0]
                                                for t in ["Short one.", doc, "x"]]
    assert spy.longest <= 64 and spy.most_per_call <= 1024 + 64


def test_text_pieces_cut_only_before_a_word_and_lose_nothing(small_pieces):
    doc = huge_document(500) + "日本語のテキストには空白がありません。" * 10 + "   spaced   out  "
    pieces = packing.text_pieces(doc)
    assert "".join(pieces) == doc and all(0 < len(p) <= 64 for p in pieces)
    for piece in pieces[1:]:  # where there is whitespace, a piece starts with the whitespace before a word
        assert piece[0].isspace() and not piece[1].isspace() or not any(c.isspace() for c in piece[:2])


def test_data_stats_and_bpe_handle_a_huge_document_in_pieces(small_pieces, tmp_path, bert_tokenizer):
    from hfmicro import bpe
    from hfmicro.data.stats import corpus_stats

    doc = huge_document()
    path = tmp_path / "one-line.txt"
    path.write_text("A short line.\n" + doc.replace("\n", " ") + "\nAnother line.\n", encoding="utf-8")
    spy = SpyTokenizer(bert_tokenizer)
    stats = corpus_stats(str(path), tokenizer=spy)
    expected = sum(len(bert_tokenizer(t, add_special_tokens=False)["input_ids"])
                   for t in ["A short line.", doc.replace("\n", " "), "Another line."])
    assert stats.documents == 3 and stats.tokens == expected
    assert spy.longest <= 64 and spy.most_per_call <= 1024 + 64

    sample = bpe._Sample(["A short line.", doc], max_bytes=None)
    batches = list(sample)
    assert max(len(t) for batch in batches for t in batch) <= 64
    assert "".join(t for batch in batches for t in batch) == "A short line." + doc
    assert sample.docs_seen == 2 and sample.bytes_seen == len(("A short line." + doc).encode())
    assert bpe.fertility(spy, [doc])["tokens_per_char"] == round(
        len(bert_tokenizer(doc, add_special_tokens=False)["input_ids"]) / len(doc), 4)
    assert spy.longest <= 64


def test_the_probe_set_counts_tokens_of_a_huge_document_in_pieces(small_pieces, bert_tokenizer):
    from hfmicro.training.probes import build_probe_set

    spy = SpyTokenizer(bert_tokenizer)
    doc = huge_document()
    _, counts = build_probe_set(spy, [doc], DOCS[:20])
    assert spy.longest <= 64
    whole = bert_tokenizer(doc, add_special_tokens=False)["input_ids"]
    assert sum(counts.values()) == len(whole) and counts[whole[0]] == whole.count(whole[0])
