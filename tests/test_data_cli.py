"""`hfmicro data stats` and `hfmicro cache info|usage|clear`, through the real argument parser."""

import json
import re

import pytest

from hfmicro.cli import main
from hfmicro.data import DataArguments, corpus_stats, load_lm_datasets


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture
def crafted(tmp_path):
    """8 usable documents (2 exact duplicates of earlier ones, 1 with control characters), 2 empty, 3 bad rows."""
    rows = [
        b'{"text": "alpha beta"}',
        b'{"text": "gamma"}',
        b'{"text": "alpha beta"}',  # duplicate
        b'{"text": ""}',  # empty
        b'{"text": "delta \xff"}',  # bad: invalid UTF-8
        b'{"text": "alpha beta "}',  # not a duplicate: one more space
        b'{"text": "  \\n "}',  # empty (whitespace)
        b'{"txt": "wrong field"}',  # bad
        b'{"text": "gamma"}',  # duplicate
        b'{"text": "epsilon"',  # bad: malformed
        b'{"text": "zeta"}',
        b'{"text": "eta"}',
        b'{"text": "\\u001b[31mred\\u001b[0m\\tok\\n"}',  # terminal colour codes left in scraped text
    ]
    path = tmp_path / "crafted.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return str(path)


def test_stats_json_has_exact_counts(crafted, capsys, gpt_tokenizer, tmp_path):
    gpt_tokenizer.save_pretrained(tmp_path / "tok")
    assert main(["data", "stats", "--dataset", crafted, "--json", "--tokenizer", str(tmp_path / "tok")]) == 0
    stats = json.loads(capsys.readouterr().out)
    docs = ["alpha beta", "gamma", "alpha beta", "alpha beta ", "gamma", "zeta", "eta", "\x1b[31mred\x1b[0m\tok\n"]
    tokens = sum(len(gpt_tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs)
    assert stats == {
        "documents": 8,
        "characters": sum(map(len, docs)),
        "tokens": tokens,
        "tokens_per_character": round(tokens / sum(map(len, docs)), 4),
        "empty_documents": 2,
        "duplicate_documents": 2,
        "control_characters": 2,  # the two ESC; tab and newline are text
        "documents_with_control_characters": 1,
        "bad_rows": 3,
        "bad_row_reasons": {"invalid UTF-8": 1, "missing text": 1, "malformed JSON": 1},
    }
    assert corpus_stats(crafted).tokens is None


def test_stats_table_shows_bad_row_locations(crafted, capsys):
    assert main(["data", "stats", "--dataset", crafted]) == 0
    out = capsys.readouterr().out
    assert re.search(r"duplicate_documents +2\n", out) and f"bad row  {crafted}:5: invalid UTF-8" in out
    assert re.search(r"bad_row_reasons +1 invalid UTF-8, 1 missing text, 1 malformed JSON\n", out)
    assert re.search(r"control_characters +2\n", out)


def test_unusable_file_exits_2_with_one_line_and_no_traceback(tmp_path, capsys):
    binary = tmp_path / "image.txt"
    binary.write_bytes(bytes(range(256)) * 100)
    assert main(["data", "stats", "--dataset", str(binary)]) == 2  # a data error, like every usage error
    captured = capsys.readouterr()
    assert captured.err.startswith("hfmicro: error: ") and str(binary) in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_cache_info_usage_and_clear(tmp_path, capsys, gpt_tokenizer):
    path = tmp_path / "c.txt"
    path.write_text("".join(f"line {i} of a small corpus\n" for i in range(200)), encoding="utf-8")
    load_lm_datasets(DataArguments(dataset=str(path), txt_mode="line", max_seq_length=8), gpt_tokenizer, "clm")
    load_lm_datasets(DataArguments(dataset=str(path), txt_mode="line", max_seq_length=16), gpt_tokenizer, "clm")
    (tmp_path / "cache" / "packed" / ".deadbeef.tmp-x").mkdir()  # what a killed build leaves behind

    assert main(["cache", "info"]) == 0
    info = capsys.readouterr().out
    assert str(tmp_path / "cache") in info and "clm x 8" in info and "clm x 16" in info and "incomplete" in info
    assert main(["cache", "usage"]) == 0
    assert capsys.readouterr().out.startswith("3 entries, ")

    assert main(["cache", "clear", "nosuchkey"]) == 2  # a usage error, like every other
    assert main(["cache", "clear"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert main(["cache", "usage"]) == 0
    assert capsys.readouterr().out.startswith("0 entries, 0.0 MB")


def test_stats_and_train_bpe_take_the_recipes_data_options(tmp_path, capsys):
    """One definition (DataArguments) for every entry point: same names, same checks."""
    from hfmicro.bpe import add_arguments
    from hfmicro.data import DataArguments
    from hfmicro.data.arguments import SOURCE_OPTIONS

    corpus = tmp_path / "c.txt"
    corpus.write_text("one sentence here\nanother sentence there\na third line\n")
    assert main(["data", "stats", "--dataset", str(corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 3  # auto: one document per line
    assert main(["data", "stats", "--dataset", str(corpus), "--txt_mode", "paragraph", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 1
    assert main(["data", "stats", "--txt_mode", "bogus"]) == 2
    assert capsys.readouterr().err.startswith("hfmicro: error: txt_mode")
    import argparse

    bpe = add_arguments(argparse.ArgumentParser())
    defaults = DataArguments()
    for name in SOURCE_OPTIONS:
        assert bpe.get_default(name) == getattr(defaults, name), name
