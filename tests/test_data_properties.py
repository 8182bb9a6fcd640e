"""Property-based: whatever a corpus file holds, the reader, `hfmicro data stats` and train_bpe.py never
raise a traceback; every good document comes out whole and in order; the counts add up."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfmicro.cli import main
from hfmicro.data import DataError, ReadReport, iter_texts

# a good document: printable text with at least one non-space character (no newlines: one jsonl row)
GOOD = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip)
BAD_LINES = st.sampled_from([
    b'{"text": "lone \\ud800 surrogate escape"}',  # valid JSON, not valid Unicode
    b'{"text": "truncated',  # broken JSON
    b'{"text": 42}', b'{"text": null}', b'["text", "a list"]', b'{"body": "other column"}',  # odd types
    b'{"text": "bad \xff byte"}',  # invalid UTF-8
    b'{"text": "nul \x00 byte"}',  # binary
    b"\x89PNG\r\x1a\x00",  # a binary blob (one line)
])
EMPTY_LINES = st.sampled_from([b'{"text": ""}', b'{"text": "   "}'])
ROWS = st.lists(st.one_of(GOOD.map(lambda t: ("good", t)), BAD_LINES.map(lambda b: ("bad", b)),
                          EMPTY_LINES.map(lambda b: ("empty", b))), min_size=1, max_size=30)


def write_jsonl(path, rows):
    with open(path, "wb") as f:
        for kind, value in rows:
            f.write((json.dumps({"text": value}).encode() if kind == "good" else value) + b"\n")


def test_a_json_escape_that_is_not_unicode_is_a_bad_row(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "good one"}\n{"text": "bad \\ud800 escape"}\n{"text": "good two"}\n')
    report = ReadReport()
    assert list(iter_texts(str(path), "all", report=report)) == ["good one", "good two"]
    assert report.bad_rows == 1 and report.bad_row_examples[0].startswith(f"{path}:2: ")
    assert main(["data", "stats", "--dataset", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bad_rows"] == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_any_jsonl_is_read_without_a_traceback_and_the_counts_add_up(tmp_path, capsys, rows):
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, rows)
    good = [t for kind, t in rows if kind == "good"]
    report = ReadReport()
    if not good:  # nothing usable: one clear error naming the file
        with pytest.raises(DataError, match="no usable documents"):
            list(iter_texts(str(path), "all", report=report))
    else:
        assert list(iter_texts(str(path), "all", report=report)) == good
    assert (report.documents, report.bad_rows, report.empty_documents) == (
        len(good), sum(k == "bad" for k, _ in rows), sum(k == "empty" for k, _ in rows))
    code = main(["data", "stats", "--dataset", str(path), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if good:
        assert code == 0 and json.loads(out)["documents"] == len(good)
    else:
        assert code == 2 and err.startswith("hfmicro: error: ")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_train_bpe_never_raises_on_any_jsonl(tmp_path_factory, capsys, rows):
    tmp = tmp_path_factory.mktemp("bpe")
    path = tmp / "corpus.jsonl"
    write_jsonl(path, rows)
    code = main(["train-bpe", "--dataset", str(path), "--vocab_size", "300", "--model_type", "gpt",
                 "--output_dir", str(tmp / "tok")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and err.strip().splitlines()[-1].startswith("hfmicro: error: "))
    assert (code == 0) == os.path.isdir(tmp / "tok")


if __name__ == "__main__":
    pytest.main([__file__])


def _other_formats(folder):
    """One file of each kind the issue lists, besides jsonl: CSV with a quoted newline and missing
    columns, parquet with nulls and a non-string column, a truncated .gz, a binary .txt."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {
        "quoted.csv": b'text,id\n"multi\nline, quoted",1\n"ok row",2\nshort\n,3\n',
        "whole.txt.gz": gzip.compress(b"good para one\n\nsecond para\n"),
        "truncated.txt.gz": gzip.compress(b"good para one\n\nsecond para\n")[:20],
        "binary.txt": b"\x00\x01\x02binary",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    pq.write_table(pa.table({"text": ["fine", None, "also fine", ""]}), folder / "nulls.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), folder / "numbers.parquet")
    return 3 + 2 + 2  # usable documents in the readable files: csv 3, whole.txt.gz 2, nulls.parquet 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_a_folder_of_every_format_reads_every_good_document(tmp_path_factory, capsys, rows):
    folder = tmp_path_factory.mktemp("corpus")
    expected = _other_formats(folder) + sum(kind == "good" for kind, _ in rows)
    write_jsonl(folder / "rows.jsonl", rows)
    report = ReadReport()
    texts = list(iter_texts(str(folder), "all", report=report))
    assert len(texts) == report.documents == expected
    good = [value for kind, value in rows if kind == "good"]
    # files are read in sorted order: nulls.parquet (2 documents), quoted.csv (3), rows.jsonl, whole.txt.gz (2)
    assert texts[5 : 5 + len(good)] == good and texts[-2:] == ["good para one", "second para"]
    assert main(["data", "stats", "--dataset", str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["documents"] == expected and "Traceback" not in err
