"""Corpus sources: builtin, every local format, globs/folders, bad input, the Hub offline, arguments."""

import gzip
import json
import os
import subprocess
import sys
import time

import pytest

from hfmicro.data import DataArguments, DataError, ReadReport, iter_texts, parse_count
from hfmicro.data.builtin import builtin_documents, builtin_fingerprint

DOCS = [
    "The first document, with a comma.",
    'A second one with "quotes" and\na line break inside.',
    "Third: unicode — café, 東京, emoji 🙂.",
    "Fourth document.",
]


def read_all(spec, **kwargs):
    report = ReadReport()
    texts = list(iter_texts(spec, "all", report=report, **kwargs))
    return texts, report


def test_builtin_is_large_deterministic_and_split():
    train = list(iter_texts("builtin", "train"))
    validation = list(iter_texts("builtin", "validation"))
    assert sum(map(len, train + validation)) >= 1_000_000
    assert set(train).isdisjoint(validation)
    assert 0.02 < len(validation) / (len(train) + len(validation)) < 0.08
    assert sorted(train + validation) == sorted(builtin_documents())
    assert all(">>>" not in doc for doc in train)  # prose, not doctest sessions

    # same corpus made in a fresh interpreter that imported nothing else (this one has transformers loaded,
    # and may have read its corpus from the cache)
    standalone = (
        "import importlib.util; spec = importlib.util.spec_from_file_location('b', 'hfmicro/data/builtin.py'); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "print(m.fingerprint_of(m.generate_documents()))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", standalone], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == builtin_fingerprint()


def test_the_builtin_corpus_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    from hfmicro.data import builtin

    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path))
    builtin.builtin_documents.cache_clear()
    try:
        made = builtin.builtin_documents()
        assert len(list((tmp_path / "builtin").glob("corpus-*.json"))) == 1
        builtin.builtin_documents.cache_clear()
        monkeypatch.setattr(builtin, "generate_documents", lambda: pytest.fail("made again"))
        assert builtin.builtin_documents() == made
    finally:
        builtin.builtin_documents.cache_clear()


def write_formats(folder) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    paths["txt"] = folder / "c.txt"
    paths["txt"].write_text("\n\n".join(DOCS) + "\n", encoding="utf-8")
    paths["jsonl"] = folder / "c.jsonl"
    records = "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS))
    paths["jsonl"].write_text(records, encoding="utf-8")
    paths["json"] = folder / "c.json"
    paths["json"].write_text(json.dumps([{"text": d} for d in DOCS]), encoding="utf-8")
    paths["csv"] = folder / "c.csv"
    import csv

    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([i, d] for i, d in enumerate(DOCS))
    paths["parquet"] = folder / "c.parquet"
    pq.write_table(pa.table({"text": DOCS}), paths["parquet"])
    paths["jsonl.gz"] = folder / "c.jsonl.gz"
    paths["jsonl.gz"].write_bytes(gzip.compress(paths["jsonl"].read_bytes()))
    return {k: str(v) for k, v in paths.items()}


def test_every_format_loads_the_same_documents(tmp_path):
    for fmt, path in write_formats(tmp_path).items():
        texts, report = read_all(path)
        assert texts == DOCS, fmt
        assert (report.bad_rows, report.empty_documents, report.documents) == (0, 0, len(DOCS)), fmt


def test_txt_line_mode_and_text_column(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("one\ntwo\n\nthree\n", encoding="utf-8")
    texts, report = read_all(str(path), txt_mode="line")
    assert texts == ["one", "two", "three"] and report.empty_documents == 1
    assert read_all(str(path))[0] == ["one\ntwo", "three"]  # default: blank-line separated paragraphs

    other = tmp_path / "body.jsonl"
    other.write_text('{"body": "hello there"}\n', encoding="utf-8")
    assert read_all(str(other), text_column="body")[0] == ["hello there"]


def test_globs_and_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jsonl").write_text('{"text": "alpha"}\n', encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("beta\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored: not a corpus format\n", encoding="utf-8")
    assert read_all(str(tmp_path))[0] == ["alpha", "beta"]
    assert read_all(str(tmp_path / "*.jsonl"))[0] == ["alpha"]
    assert read_all(str(tmp_path / "**" / "*.txt"))[0] == ["beta"]
    with pytest.raises(DataError, match="no corpus files found"):
        read_all(str(tmp_path / "*.parquet"))


def test_bad_rows_are_counted_located_and_good_rows_kept(tmp_path):
    path = tmp_path / "messy.jsonl"
    lines = [
        b'{"text": "good one"}',
        b'{"text": "bad utf8 \xff here"}',  # bad: invalid UTF-8
        b"{not json",  # bad: malformed
        b'{"title": "no text"}',  # bad: missing column
        b'{"text": 42}',  # bad: not a string
        b'{"text": "   "}',  # empty
        b'{"text": ""}',  # empty
        b'"just a string"',  # bad: not an object
        b'{"text": "good two"}',
        b'{"text": "' + b"x" * 10_000_000 + b'"}',  # a 10 MB line is a (long) good document
        b'{"text": "good three"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    texts, report = read_all(str(path))
    assert texts[:2] == ["good one", "good two"] and texts[3] == "good three" and len(texts[2]) == 10_000_000
    assert (report.documents, report.bad_rows, report.empty_documents) == (4, 5, 2)
    assert report.bad_row_examples[0] == f"{path}:2: invalid UTF-8 at byte 19"
    assert [e.split(": ")[0] for e in report.bad_row_examples] == [f"{path}:{n}" for n in (2, 3, 4, 5, 8)]
    assert report.bad_row_reasons == {"invalid UTF-8": 1, "malformed JSON": 1, "missing text": 1, "text not a string": 2}
    assert report.describe_bad_rows() == (
        "skipped 5 of 11 rows: 2 text not a string, 1 invalid UTF-8, 1 malformed JSON, 1 missing text; "
        f"first at {path}:2 (invalid UTF-8 at byte 19)"
    )


def test_bad_rows_in_txt_csv_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    txt = tmp_path / "p.txt"
    txt.write_bytes(b"good para\nstill good\n\nbad \xc3\x28 para\nrest of it\n\n   \n\nlast para\n")
    texts, report = read_all(str(txt))
    assert texts == ["good para\nstill good", "last para"] and report.bad_rows == 1
    assert report.bad_row_examples == [f"{txt}:4: invalid UTF-8 at byte 4 (line 4)"]

    csv_path = tmp_path / "t.csv"
    csv_path.write_bytes(b"text,n\nfine,1\nbroken \xff,2\n,3\nshort\nalso fine,5\n")
    texts, report = read_all(str(csv_path))
    assert texts == ["fine", "short", "also fine"]
    assert (report.bad_rows, report.empty_documents) == (1, 1)

    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["ok", None, "", "fine"]}), parquet)
    texts, report = read_all(str(parquet))
    assert texts == ["ok", "fine"] and (report.bad_rows, report.empty_documents) == (1, 1)


def test_file_without_usable_rows_is_an_error_naming_it(tmp_path):
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(DataError, match="blob.txt: no usable documents"):
        read_all(str(binary))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n{"other": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: no usable documents"):
        read_all(str(empty))
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="fake.parquet: not a readable parquet file"):
        read_all(str(fake))
    with pytest.raises(DataError, match="no corpus files found at path"):
        read_all(str(tmp_path / "missing.jsonl"))


def test_limits_max_bytes_and_max_documents(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"document number {i}\n" for i in range(1000)), encoding="utf-8")
    assert len(list(iter_texts(str(path), "all", txt_mode="line", max_documents=7))) == 7
    texts = list(iter_texts(str(path), "all", txt_mode="line", max_bytes=100))
    assert sum(len(t) for t in texts[:-1]) < 100 <= sum(len(t) for t in texts)


def test_hash_split_is_disjoint_and_follows_percentage(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"document number {i}\n" for i in range(2000)), encoding="utf-8")
    kwargs = dict(txt_mode="line", validation_split_percentage=10)
    train = list(iter_texts(str(path), "train", **kwargs))
    validation = list(iter_texts(str(path), "validation", **kwargs))
    assert set(train).isdisjoint(validation) and len(train) + len(validation) == 2000
    assert 150 < len(validation) < 250


def test_hub_name_offline_fails_fast_naming_the_dataset():
    """Must not hang: HF_HUB_OFFLINE=1 (set by conftest) fails at once, never after ~24 s of retries."""
    start = time.monotonic()
    with pytest.raises(DataError, match="'wikitext'.*builtin"):
        next(iter_texts("wikitext", dataset_config="wikitext-103-raw-v1"))
    assert time.monotonic() - start < 10


def test_hub_unreachable_without_offline_flag_fails_fast(monkeypatch):
    """Without HF_HUB_OFFLINE, a 3-second probe finds the Hub unreachable (here a closed local port)."""
    from huggingface_hub import constants

    from hfmicro.data.hub import load_hub_dataset

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(DataError, match="'openwebtext'.*unreachable.*builtin"):
        load_hub_dataset("openwebtext", None, streaming=True)
    assert time.monotonic() - start < 10


def test_parse_count():
    assert parse_count("500k") == 500_000
    assert parse_count("5M") == 5_000_000
    assert parse_count("50M") == 50_000_000
    assert parse_count("1.5m") == 1_500_000
    assert parse_count("20000") == 20_000 and parse_count(7) == 7 and parse_count(None) is None
    for bad in ("5X", "", "1.5", "-3"):
        with pytest.raises(ValueError):
            parse_count(bad)
    # one reading of sizes everywhere: a B after a unit is "bytes", alone it is "billion" (it was 1 byte in
    # train_bpe's --max_bytes and 10^9 in --max_samples)
    assert parse_count("1B") == parse_count("1G") == parse_count("1GB") == parse_count("1gb") == 10**9
    assert parse_count("500MB") == 500_000_000 and parse_count("2T") == 2 * 10**12


def test_train_bpe_reads_sizes_like_the_recipes():
    import argparse

    from hfmicro.bpe import add_arguments

    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--vocab_size", "500", "--model_type", "gpt", "--output_dir", "x", "--max_bytes", "1B"])
    assert args.max_bytes == 10**9


def test_data_arguments_validate_and_parse():
    from dataclasses import fields

    from transformers import HfArgumentParser

    assert all(f.metadata.get("help") for f in fields(DataArguments))
    (args,) = HfArgumentParser(DataArguments).parse_args_into_dataclasses(
        ["--dataset", "corpus/*.jsonl", "--streaming", "--max_samples", "5M", "--max_seq_length", "256"]
    )
    assert args.streaming and args.max_documents == 5_000_000 and args.max_seq_length == 256
    for kwargs, field_name in [
        (dict(max_samples="lots"), "max_samples"),
        (dict(max_seq_length=1), "max_seq_length"),
        (dict(mlm_probability=1.5), "mlm_probability"),
        (dict(txt_mode="sentence"), "txt_mode"),
        (dict(validation_split_percentage=100), "validation_split_percentage"),
        (dict(static_masking=True, streaming=True), "static_masking"),
        (dict(static_masking=True, keep_partial_block=True), "static_masking"),
    ]:
        with pytest.raises(ValueError, match=field_name):
            DataArguments(**kwargs)


def test_an_empty_or_broken_file_in_a_folder_is_skipped_with_a_note(tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "first good document"}\n{"text": "second good document"}\n')
    (folder / "b.txt").write_text("")  # empty
    (folder / "c.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00broken")  # truncated gzip
    texts = list(iter_texts(str(folder), "all"))
    assert texts == ["first good document", "second good document"]
    err = capsys.readouterr().err
    assert f"{folder / 'b.txt'}: no usable documents" in err and f"{folder / 'c.jsonl.gz'}: cannot read" in err
    (folder / "a.jsonl").write_text("")
    with pytest.raises(DataError, match="none of its 3 files"):
        list(iter_texts(str(folder), "all"))
