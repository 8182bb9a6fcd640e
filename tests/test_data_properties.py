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


@pytest.mark.slow  # fuzzes
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


@pytest.mark.slow  # fuzzes
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


@pytest.mark.slow  # fuzzes
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


# The same kind of corpus in every other format: each row is good, bad or empty as that format can hold it.
CSV_GOOD = st.one_of(GOOD, st.tuples(GOOD, GOOD).map("\n".join))  # quoted newlines inside a field
CSV_BAD = st.sampled_from([b"7", b'7,"bad \xff byte"', b'7,"nul \x00 byte"'])  # no text field, invalid UTF-8, NUL
TXT_BAD = st.sampled_from([b"bad \xff byte", b"nul \x00 byte", b"\x89PNG\r\x1a\x00"])


def rows_of(good, bad, empty):
    return st.lists(st.one_of(good.map(lambda t: ("good", t)), bad.map(lambda b: ("bad", b)),
                              empty.map(lambda t: ("empty", t))), min_size=1, max_size=25)


def write_csv(path, rows):
    import csv
    import io

    with open(path, "wb") as f:
        f.write(b"id,text\n")
        for i, (kind, value) in enumerate(rows):
            if kind == "bad":
                f.write(value + b"\n")
                continue
            line = io.StringIO()
            csv.writer(line, lineterminator="\n").writerow([i, value])
            f.write(line.getvalue().encode())


def write_txt(path, rows):  # one document per line (--txt_mode line)
    with open(path, "wb") as f:
        for kind, value in rows:
            f.write((value.encode() if kind != "bad" else value) + b"\n")


def write_parquet(path, rows):  # a null is parquet's bad row
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": pa.array([None if kind == "bad" else v for kind, v in rows], pa.string())}), path)


def write_json_array(path, rows):
    records = [{"text": value} if kind != "bad" else value for kind, value in rows]
    path.write_text(json.dumps(records), encoding="utf-8")


def write_jsonl_gz(path, rows):
    import gzip

    plain = path.parent / "plain.jsonl"
    write_jsonl(plain, rows)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()


EMPTY_TEXT = st.sampled_from(["", "   "])
FORMATS = {
    "csv": (write_csv, rows_of(CSV_GOOD, CSV_BAD, EMPTY_TEXT)),
    "txt": (write_txt, rows_of(GOOD, TXT_BAD, st.just("   "))),
    "parquet": (write_parquet, rows_of(GOOD, st.just(None), EMPTY_TEXT)),
    "json": (write_json_array, rows_of(GOOD, st.sampled_from([42, None, ["a", "list"], {"body": "x"}]),
                                       EMPTY_TEXT)),
    "jsonl.gz": (write_jsonl_gz, ROWS),
}


def check_format(folder, capsys, fmt, rows, bpe: bool):
    """Reader, data stats and (with `bpe`) train_bpe on one generated file: no traceback, every good
    document whole and in order, counts that add up."""
    write, _ = FORMATS[fmt]
    path = folder / f"corpus.{fmt}"
    write(path, rows)
    options = ["--txt_mode", "line"] if fmt == "txt" else []
    good = [value for kind, value in rows if kind == "good"]
    report = ReadReport()
    try:
        texts = list(iter_texts(str(path), "all", report=report, txt_mode="line"))
    except DataError as err:
        assert not good and "no usable documents" in str(err)
        texts = []
    assert texts == good
    assert (report.documents, report.bad_rows, report.empty_documents) == (
        len(good), sum(k == "bad" for k, _ in rows), sum(k == "empty" for k, _ in rows))
    assert sum(report.bad_row_reasons.values()) == report.bad_rows
    code = main(["data", "stats", "--dataset", str(path), "--json", *options])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert (code, json.loads(out)["documents"]) == (0, len(good)) if good else code == 2
    if bpe:
        code = main(["train-bpe", "--dataset", str(path), "--vocab_size", "300", "--model_type", "bert",
                     "--output_dir", str(folder / "tok"), "--validation_split_percentage", "0", *options])
        err = capsys.readouterr().err
        assert "Traceback" not in err and (code == 0) == bool(good) == os.path.isdir(folder / "tok")


@pytest.mark.slow  # fuzzes
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bpe,examples", [(False, 20), (True, 3)], ids=["reader", "train_bpe"])
def test_any_file_of_any_format_reads_whole_good_documents_and_train_bpe_never_raises(fmt, bpe, examples,
                                                                                       tmp_path_factory, capsys):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=FORMATS[fmt][1])
    def check(rows):
        check_format(tmp_path_factory.mktemp(fmt), capsys, fmt, rows, bpe=bpe)

    check()
