"""hfmicro.bpe / tokenizers/train_bpe.py: byte-level BPE tokenizers that every HF tool loads.

Tiny vocabularies (≤ 500) trained on the pydoc prose from conftest keep this file at a few seconds
plus four subprocesses (fresh-process load, the script from the repo root, one bad CLI input, the
`tokenizers` import next to the script folder).
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import sample_texts

from hfmicro.bpe import BpeError, add_arguments, run, train_bpe
from hfmicro.data import parse_count

REPO = Path(__file__).resolve().parent.parent
ROUND_TRIP = {
    "english": "The cat sat on the mat. It didn't move , at all !",
    "chinese": "自然语言处理是人工智能的一个分支。",
    "korean": "한국어 형태소 분석은 어렵습니다.",
    "emoji": "family 👩‍👩‍👧 flag 🇯🇵 thumbs 👍🏽!",
    "mixed": "GPT-2 说 hello, 세계 🌍 — naïve café (e\u0301) 2+2=4",
    "whitespace": "  two leading,\ttab\nnewline  \r\ncrlf \n\n trailing  ",
}


@pytest.fixture(scope="module")
def corpus():
    texts = sample_texts()
    return texts[:-40], texts[-40:]  # train, held out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """{model_type: (folder, report)} for a 500-token tokenizer of each kind."""
    train, heldout = corpus
    out = {}
    for model_type in ("bert", "gpt"):
        folder = tmp_path_factory.mktemp("tok") / model_type
        with pytest.warns(UserWarning, match="outside the supported range"):
            report = train_bpe(train, vocab_size=500, model_type=model_type, output_dir=str(folder), heldout=heldout)
        out[model_type] = (folder, report)
    return out


@pytest.fixture(scope="module")
def loaded(trained):
    from transformers import AutoTokenizer

    return {kind: AutoTokenizer.from_pretrained(folder) for kind, (folder, _) in trained.items()}


# Printed by a fresh interpreter outside the repo: what a user's process sees after save -> load.
_FRESH_LOAD = """
import json, sys
from transformers import AutoTokenizer
out = {}
for folder in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(folder)
    added = tok.backend_tokenizer.get_added_tokens_decoder()
    out[folder] = {
        "fast": tok.is_fast,
        "vocab": len(tok),
        "specials": {k: [v, tok.convert_tokens_to_ids(v)] for k, v in tok.special_tokens_map.items()},
        "lstrip": {t.content: t.lstrip for t in added.values()},
        "input_names": tok.model_input_names,
        "clean_up": tok.clean_up_tokenization_spaces,
        "tokens": tok.convert_ids_to_tokens(tok("The [MASK] sat")["input_ids"]),
        "inline": tok.convert_ids_to_tokens(tok("end<|endoftext|>start")["input_ids"]),
    }
print(json.dumps(out))
"""


def test_specials_and_ids_survive_save_and_load_in_a_fresh_process(trained, tmp_path):
    folders = [str(trained[k][0]) for k in ("bert", "gpt")]
    env = {**os.environ, "PYTHONPATH": ""}  # cwd=tmp_path and no PYTHONPATH: the repo is not importable
    proc = subprocess.run([sys.executable, "-c", _FRESH_LOAD, *folders], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bert, gpt = (json.loads(proc.stdout)[f] for f in folders)

    assert bert["fast"] and gpt["fast"] and bert["vocab"] == gpt["vocab"] == 500
    assert bert["specials"] == {
        "pad_token": ["[PAD]", 0], "unk_token": ["[UNK]", 1], "cls_token": ["[CLS]", 2],
        "sep_token": ["[SEP]", 3], "mask_token": ["[MASK]", 4],
    }
    assert bert["lstrip"] == {"[PAD]": False, "[UNK]": False, "[CLS]": False, "[SEP]": False, "[MASK]": True}
    assert bert["tokens"][:3] == ["[CLS]", "The", "[MASK]"] and bert["tokens"][-1] == "[SEP]"
    assert bert["input_names"] == ["input_ids", "token_type_ids", "attention_mask"]

    assert gpt["specials"] == {
        "bos_token": ["<|endoftext|>", 0], "eos_token": ["<|endoftext|>", 0], "pad_token": ["<|pad|>", 1],
    }
    assert gpt["input_names"] == ["input_ids", "attention_mask"]
    assert "<|endoftext|>" not in gpt["tokens"]  # GPT-2 convention: nothing added on encode
    assert gpt["inline"].count("<|endoftext|>") == 1  # a special token in the text stays whole (tokenizers#472)
    assert bert["clean_up"] is gpt["clean_up"] is False


def test_bert_post_processor_single_and_pair(loaded):
    tok = loaded["bert"]
    single = tok("a b")
    assert tok.convert_ids_to_tokens(single["input_ids"]) == ["[CLS]", "a", "Ġb", "[SEP]"]
    assert single["token_type_ids"] == [0, 0, 0, 0]
    pair = tok("a", "b")
    assert tok.convert_ids_to_tokens(pair["input_ids"]) == ["[CLS]", "a", "[SEP]", "b", "[SEP]"]
    assert pair["token_type_ids"] == [0, 0, 0, 1, 1]


def test_offsets_leave_out_the_space_so_whole_word_masking_sees_words(loaded):
    # DataCollatorForLanguageModeling(whole_word_mask=True) starts a word where a token's start
    # differs from the previous token's end.
    enc = loaded["bert"]("hello world", return_offsets_mapping=True, add_special_tokens=False)
    starts = [start for start, _ in enc["offset_mapping"]]
    assert 6 in starts and 5 not in starts


@pytest.mark.parametrize("model_type", ["bert", "gpt"])
@pytest.mark.parametrize("script", sorted(ROUND_TRIP))
def test_decode_encode_round_trip(loaded, model_type, script):
    tok, text = loaded[model_type], ROUND_TRIP[script]
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_fill_mask_predicts_whole_words(loaded):
    import torch
    from transformers import BertConfig, BertForMaskedLM, pipeline

    tok = loaded["bert"]
    assert "Ġ" not in tok.convert_ids_to_tokens(tok("The [MASK] sat")["input_ids"])
    config = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    the = tok.convert_tokens_to_ids("Ġthe")
    with torch.no_grad():
        model.get_output_embeddings().bias[the] = 100.0  # the model's answer: " the"
    best = pipeline("fill-mask", model=model, tokenizer=tok)("The [MASK] sat")[0]
    assert best["token"] == the and best["token_str"] == " the"
    assert best["sequence"] == "The the sat"  # one space each side: no stray space token


def test_eos_labels_survive_the_clm_collator(loaded):
    from transformers import DataCollatorForLanguageModeling

    tok = loaded["gpt"]
    assert tok.pad_token_id != tok.eos_token_id
    docs = [tok.encode(t) + [tok.eos_token_id] for t in ("a short one", "and a somewhat longer document")]
    batch = DataCollatorForLanguageModeling(tok, mlm=False)([{"input_ids": ids} for ids in docs])
    labels, ids = batch["labels"], batch["input_ids"]
    assert (labels[ids == tok.eos_token_id] == tok.eos_token_id).all() and (ids == tok.eos_token_id).sum() == 2
    assert (labels[ids == tok.pad_token_id] == -100).all() and (ids == tok.pad_token_id).any()


@pytest.mark.parametrize(("model_type", "minimum"), [("bert", 261), ("gpt", 258)])
def test_vocab_below_bytes_plus_specials_is_refused(tmp_path, model_type, minimum):
    with pytest.raises(BpeError, match=f"at least {minimum}"):
        train_bpe(["some text"], vocab_size=minimum - 1, model_type=model_type, output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_max_bytes_caps_a_stream_that_never_ends(tmp_path, corpus):
    endless = itertools.cycle(corpus[0])
    with pytest.warns(UserWarning, match="outside the supported range"):
        report = train_bpe(endless, vocab_size=300, model_type="gpt", output_dir=str(tmp_path / "t"), max_bytes=30_000)
    assert 29_000 < report["bytes_seen"] <= 30_000


@pytest.mark.parametrize(
    ("text", "value"), [("1G", 10**9), ("500M", 5 * 10**8), ("100k", 10**5), ("1.5GB", 15 * 10**8), ("4096", 4096)]
)
def test_sizes_are_read_by_the_one_count_parser(text, value):
    assert parse_count(text) == value


def test_a_size_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="count or size"):
        parse_count("lots")


def test_training_report(trained, corpus):
    folder, report = trained["bert"]
    assert json.loads((folder / "training_report.json").read_text()) == report
    assert report["vocab_size"] == 500 and report["model_type"] == "bert"
    assert report["bytes_seen"] == sum(len(t.encode()) for t in corpus[0])
    assert report["seconds"] > 0 and report["mb_per_s"] > 0
    fert = report["fertility"]
    assert fert["docs"] == 40 and 1 < fert["tokens_per_word"] < 5 and 0.1 < fert["tokens_per_char"] < 1


def _cli(argv: list[str]) -> int:
    return run(add_arguments(argparse.ArgumentParser()).parse_args(argv))


@pytest.fixture
def bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "body.jsonl").write_text('{"body": "a document without the text column"}\n')
    (tmp_path / "a_file").write_text("")
    return {
        "empty corpus": ([str(tmp_path / "empty.txt")], "no usable documents"),
        "missing text column": ([str(tmp_path / "body.jsonl")], "'text'"),
        "unwritable output dir": (["builtin", "--output_dir", str(tmp_path / "a_file" / "tok")], "cannot write"),
    }


@pytest.mark.parametrize("case", ["empty corpus", "missing text column", "unwritable output dir"])
def test_bad_input_gives_one_clear_line_and_writes_nothing(tmp_path, bad_inputs, capsys, case):
    (dataset, *extra), expected = bad_inputs[case]
    before = sorted(os.listdir(tmp_path))
    code = _cli(["--dataset", dataset, "--vocab_size", "5000", "--model_type", "bert",
                 "--output_dir", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("hfmicro: error: ") and expected in err[0]
    assert sorted(os.listdir(tmp_path)) == before  # no output dir, no leftover temp dir


def test_failed_overwrite_leaves_the_old_folder_unchanged(tmp_path, bad_inputs, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    args = ["--vocab_size", "5000", "--model_type", "gpt", "--output_dir", str(out)]
    assert _cli(["--dataset", str(tmp_path / "empty.txt"), *args, "--overwrite"]) != 0
    assert _cli(["--dataset", "builtin", *args]) != 0  # non-empty without --overwrite: refused up front
    assert "not empty" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a_file", "body.jsonl", "empty.txt", "out"]


def _repo_env() -> dict:
    # Until hfmicro is pip-installed, the repo root must be importable; this also puts the repo's
    # `tokenizers/` folder on the path, the shadowing case the real library has to win.
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_bad_cli_input_exits_nonzero_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hfmicro.cli", "train-bpe", "--dataset", str(tmp_path / "missing.txt"),
         "--vocab_size", "5000", "--model_type", "gpt", "--output_dir", str(tmp_path / "out")],
        cwd=REPO, env=_repo_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("hfmicro: error: ") and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_script_runs_from_the_repo_root(tmp_path):
    out = tmp_path / "tok"
    proc = subprocess.run(
        [sys.executable, "tokenizers/train_bpe.py", "--dataset", "builtin", "--vocab_size", "400",
         "--model_type", "gpt", "--max_bytes", "100k", "--output_dir", str(out)],
        cwd=REPO, env=_repo_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "training_report.json").read_text())
    assert report["bytes_seen"] <= 100_000 and report["fertility"]["heldout"] == "the validation split"
    assert report["command"].startswith("python tokenizers/train_bpe.py --dataset builtin")


def test_the_script_folder_does_not_shadow_the_tokenizers_library():
    # As when running tokenizers/train_bpe.py (its folder first on sys.path), with the repo root on
    # sys.path too ('' for `python -c` here): `tokenizers/` has no __init__.py, so the library wins.
    code = "import sys; sys.path.insert(0, 'tokenizers'); import tokenizers; print(tokenizers.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "site-packages" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(("name", "model_type"), [("microbert-8k", "bert"), ("microgpt-8k", "gpt")])
def test_shipped_tokenizers(name, model_type):
    from transformers import AutoTokenizer

    folder = REPO / "tokenizers" / name
    tok = AutoTokenizer.from_pretrained(folder)
    report = json.loads((folder / "training_report.json").read_text())
    assert tok.is_fast and len(tok) == 8000 == report["vocab_size"]
    assert report["model_type"] == model_type and report["command"].startswith("python tokenizers/train_bpe.py")
    if model_type == "bert":
        ids = [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id]
        assert ids == [0, 1, 2, 3, 4] and tok.mask_token == "[MASK]"
    else:
        assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 0, 1)
    assert tok.decode(tok.encode(ROUND_TRIP["mixed"], add_special_tokens=False)) == ROUND_TRIP["mixed"]
