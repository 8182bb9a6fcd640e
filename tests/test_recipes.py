"""Recipes: every shipped YAML validates; options and errors; checkpoint discovery; the
accelerate configs load with accelerate's own loader."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from hfmicro.presets import PRESETS
from hfmicro.training.arguments import load_recipe_yaml, parse_recipe
from hfmicro.training.hardware import detect_hardware

from helpers import ROOT

RECIPES = sorted(glob.glob(os.path.join(ROOT, "recipes", "*.yaml")))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "accelerate_configs", "*.yaml")))
HERE = detect_hardware()  # this machine: a recipe's precision is settled for it, as a launch does


def test_recipes_exist():
    names = {os.path.basename(p) for p in RECIPES}
    assert {"microbert-debug.yaml", "microgpt-debug.yaml", "microbert-cpu.yaml", "microgpt-cpu.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_every_recipe_yaml_validates(path, tmp_path):
    values = load_recipe_yaml(path)
    assert values["preset"] in PRESETS
    model_args, data_args, args = parse_recipe(["--config", path, "--output_dir", str(tmp_path), "--use_cpu", "true",
                                                "--precision", "fp32"], hardware=HERE)
    assert model_args.preset == values["preset"]
    assert data_args.max_seq_length == values.get("max_seq_length", 128)
    if "learning_rate" in values:
        assert args.learning_rate == float(values["learning_rate"])
    family = PRESETS[model_args.preset].family
    assert os.path.basename(path).startswith(family)


@pytest.mark.parametrize("name", ["microbert-8l-256d-a10.yaml", "microbert-8l-256d-t4x2.yaml", "microbert-3l-512d-h200x8.yaml",
                                  "microgpt-8l-512d-a10.yaml", "microgpt-8l-512d-t4x2.yaml",
                                  "microgpt-8l-512d-moe-t4x2.yaml"])
def test_the_users_recipes_train_the_options_except_under_fp16(name, tmp_path):
    """The users' presets carry the default recipes' options; the fp16 (2xT4) recipes switch off the ones that
    may overflow fp16 (ReLU² squares activations) with those that go with them, and keep the rest."""
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training.build import load_tokenizer, model_config

    objective = "mlm" if name.startswith("microbert") else "clm"
    spec = OBJECTIVES[objective]
    model_args, data_args, _ = parse_recipe(["--config", os.path.join(ROOT, "recipes", name), "--output_dir",
                                             str(tmp_path)])
    config = model_config(model_args, data_args, load_tokenizer(spec.tokenizer, spec), spec)
    fp16 = "t4x2" in name
    assert not config.use_bias and config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.0
    assert config.hidden_act == ("relu2" if not fp16 else "gelu" if objective == "mlm" else "gelu_new")
    assert config.qk_norm is not fp16
    if objective == "mlm":
        assert config.pre_norm and config.position_embedding_type == "rotary" and config.type_vocab_size == 0
        assert config.value_residual is not fp16 and config.head_act == "gelu"
    else:
        assert config.position_embedding_type == ("absolute" if fp16 else "rotary")
        assert config.zero_init_residual is not fp16
        assert config.num_experts == (4 if "moe" in name else 0)


def test_flags_override_yaml(tmp_path):
    path = os.path.join(ROOT, "recipes", "microbert-debug.yaml")
    model_args, data_args, args = parse_recipe(
        ["--config", path, "--learning_rate", "7e-4", "--max_seq_length", "32", "--hidden_size", "48",
         "--output_dir", str(tmp_path)]
    )
    assert args.learning_rate == 7e-4 and data_args.max_seq_length == 32
    assert model_args.config_overrides()["hidden_size"] == 48
    assert args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}  # cosine decay to 10 % of peak by default


@pytest.mark.parametrize(
    "argv,yaml_extra,message",
    [
        (["--not_a_field", "1"], {}, "--not_a_field"),
        ([], {"learning_rat": 0.1}, "learning_rat"),
        (["--preset", "microbert-huge"], {}, "preset"),
        (["--mlm_probability", "1.5"], {}, "mlm_probability"),
        (["--min_lr_ratio", "2"], {}, "min_lr_ratio"),
        (["--precision", "fp16"], {}, "fp16"),
        (["--probe_steps", "5"], {}, "now --demo_steps"),
        ([], {"probe_steps": 5}, "now 'demo_steps'"),
        # a truncated flag was taken for the field it abbreviates (argparse's allow_abbrev)
        (["--learning_r", "1e-3"], {}, "--learning_r"),
    ],
)
def test_bad_options_are_refused_naming_the_field(tmp_path, argv, yaml_extra, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"preset": "microbert-toy", **yaml_extra}))
    with pytest.raises(ValueError, match=message):
        parse_recipe(["--config", str(recipe), "--output_dir", str(tmp_path / "out"), *argv], hardware=HERE)


def test_yaml_values_take_the_type_of_their_field(tmp_path):
    """YAML reads `1e-3` as a string and "yes" stays a string: they are converted or refused by field type."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("preset: microbert-toy\nlearning_rate: 1e-3\nwarmup_steps: 1e2\nmax_steps: '30'\n")
    _, _, args = parse_recipe(["--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    assert args.learning_rate == 0.001 and args.warmup_steps == 100 and args.max_steps == 30
    recipe.write_text("preset: microbert-toy\nlearning_rate: fast\n")
    with pytest.raises(ValueError, match="learning_rate"):
        parse_recipe(["--config", str(recipe), "--output_dir", str(tmp_path / "out")])


def refusal_line(capsys, argv: list[str]) -> str:
    """The MLM recipe's entry point, in this process, refuses `argv` with exit code 2 and no traceback: its
    last line on stderr."""
    from hfmicro.training.run import pretrain

    assert pretrain("mlm", argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hfmicro: error: ") and "Traceback" not in "\n".join(err), (argv, err[-3:])
    return err[-1]


def test_a_config_value_of_the_wrong_type_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "r.yaml"
    for line, field in [("use_bias: 3", "use_bias"), ("hidden_size: 25.5", "hidden_size"),
                        ("residual_init: xavier", "residual_init")]:
        recipe.write_text(f"preset: microbert-toy\n{line}\n")
        assert field in refusal_line(capsys, ["--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "cache").exists()  # refused before any data was read


@pytest.mark.slow  # trains
def test_bad_config_fails_before_training_with_one_line(tmp_path, capsys, monkeypatch):
    """Exit code 2, one error line, no traceback, nothing read or trained: once through the real command,
    the other cases through the same entry point in this process."""
    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path / "cache"))
    out, recipe = tmp_path / "out", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml")]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "recipes", "pretrain_mlm.py"), *recipe,
                             "--dataset", str(tmp_path / "missing.txt"), "--output_dir", str(out), "--max_steps", "40"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hfmicro: error: ") and "missing.txt" in last  # the one form everywhere
    assert not os.path.exists(out / "model.safetensors")
    cases = [
        (["--hidden_size", "33"], "hidden_size"),
        (["--streaming", "true", "--max_steps", "-1"], "max_steps"),
        (["--preset", "microgpt-toy"], "microgpt"),
        (["--num_experts", "4"], "num_experts: microbert has no such option"),  # a MicroGPT-only option was ignored
    ]
    for argv, word in cases:
        assert word in refusal_line(capsys, [*recipe, "--output_dir", str(out), "--max_steps", "40", *argv])
        assert not os.path.exists(out / "model.safetensors")
    assert not (tmp_path / "cache").exists()  # refused before any data was read


def comment_flags(path: str, known: set[str], bools: set[str]) -> list[list[str]]:
    """The recipe options a YAML file's comments tell users to pass (`--field value`), one list per mention."""
    mentions = []
    for line in open(path, encoding="utf-8"):
        comment = line.partition("#")[2]
        for match in re.finditer(r"--(\w+)(?:[ =]([^\s),;:]+))?", comment):
            name, value = match.groups()
            if name not in known or name == "config":
                continue
            if value is None or value.startswith("-") or (name in bools and value.lower() not in ("true", "false")):
                mentions.append([f"--{name}"])
            else:
                mentions.append([f"--{name}", value])
    return mentions


@pytest.mark.parametrize("path", CONFIGS + RECIPES, ids=os.path.basename)
def test_the_options_that_comments_suggest_are_accepted(path, tmp_path):
    """cpu.yaml said "bf16 on CPU only when asked (--bf16 with use_cpu)", which is refused: --precision bf16 is
    the option."""
    from dataclasses import fields

    from hfmicro.data import DataArguments
    from hfmicro.training.arguments import ModelArguments, PretrainingArguments

    every = [f for cls in (ModelArguments, DataArguments, PretrainingArguments) for f in fields(cls)]
    known = {f.name for f in every}
    bools = {f.name for f in every if f.type in (bool, "bool", bool | None, "bool | None")}
    for flags in comment_flags(path, known, bools):
        parse_recipe([*flags, "--output_dir", str(tmp_path)])  # raises naming what is wrong


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_accelerate_configs_load_and_match_their_hardware(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(path)
    name = os.path.basename(path)
    expected_precision = {"cpu": "no", "t4x2": "fp16"}.get(name.split(".")[0].split("_")[0], "bf16")
    assert config.mixed_precision == expected_precision
    if name.startswith("t4"):
        assert config.num_processes == 2  # T4 (compute capability 7.5) has no bf16
    if name.startswith("h200x8"):
        assert config.num_processes == 8
    if name == "cpu_ddp.yaml":
        assert config.num_processes == 2 and config.distributed_type == "MULTI_GPU"
    if name == "multinode.yaml":
        assert config.num_machines == 2 and config.main_process_ip
    if "fsdp" in name:
        assert config.distributed_type == "FSDP" and config.fsdp_config["fsdp_version"] == 2


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--learning_rate=-1e-3"], "learning_rate"),
        (["--learning_rate", "0"], "learning_rate"),
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size"),
        (["--per_device_eval_batch_size", "-2"], "per_device_eval_batch_size"),
        (["--gradient_accumulation_steps", "0"], "gradient_accumulation_steps"),
        (["--max_steps", "0"], "max_steps"),
        (["--num_train_epochs", "0"], "num_train_epochs"),
        (["--save_steps", "0"], "save_steps"),
        (["--warmup_steps", "-1"], "warmup_steps"),
        (["--bf16", "true"], "precision"),  # was silently turned off by --precision auto
        (["--fp16", "true", "--precision", "fp32"], "precision"),
        (["--config", os.path.join(ROOT, "recipes", "microgpt-debug.yaml")], "--config"),  # a second one
        # was an AssertionError traceback from EarlyStoppingCallback at the first step
        (["--early_stopping_patience", "2", "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss",
          "--eval_strategy", "no", "--save_strategy", "no"], "early_stopping_patience"),
    ],
)
def test_invalid_training_options_are_refused_before_any_work(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        parse_recipe(["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"),
                      "--output_dir", str(tmp_path / "out"), *argv], hardware=HERE)


@pytest.fixture(scope="module")
def trained_mlm(tmp_path_factory):
    """A 2-step MicroBERT run: an output_dir with a checkpoint."""
    from hfmicro.training.run import pretrain

    out = tmp_path_factory.mktemp("trained") / "out"
    assert pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", str(out),
                            "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2", "--eval_on_start", "false"]) == 0
    return out


@pytest.mark.slow  # trains
@pytest.mark.parametrize(
    "objective,recipe,extra,word",
    [
        ("clm", "microgpt-debug.yaml", [], "model_type"),  # the CLM recipe into an MLM run's folder
        ("mlm", "microbert-debug.yaml", ["--hidden_size", "64"], "hidden_size"),
        ("mlm", "microbert-debug.yaml", ["--tokenizer", "OTHER"], "tokenizer"),
    ],
)
def test_an_output_dir_of_another_model_or_tokenizer_is_refused(trained_mlm, tmp_path, capsys, objective, recipe,
                                                               extra, word):
    from hfmicro.training.run import pretrain

    out = tmp_path / "out"
    shutil.copytree(trained_mlm, out)
    if "OTHER" in extra:
        other = str(tmp_path / "other-tokenizer")
        subprocess.run([sys.executable, os.path.join(ROOT, "tokenizers", "train_bpe.py"), "--dataset", "builtin",
                        "--vocab_size", "6000", "--model_type", "bert", "--output_dir", other], check=True,
                       capture_output=True, timeout=300)
        extra = ["--tokenizer", other]
    capsys.readouterr()
    code = pretrain(objective, ["--config", os.path.join(ROOT, "recipes", recipe), "--output_dir", str(out),
                                "--max_steps", "4", *extra])
    captured = capsys.readouterr()
    assert code == 2
    line = captured.err.strip().splitlines()[-1]
    assert word in line and "--force_fresh" in line, line
    assert "[hfmicro] data " not in captured.out  # refused before any data was read
    assert pretrain(objective, ["--config", os.path.join(ROOT, "recipes", recipe), "--output_dir", str(out),
                                "--max_steps", "1", "--eval_on_start", "false", "--force_fresh", "true", *extra]) == 0


@pytest.mark.slow  # trains
def test_a_one_sentence_per_line_txt_trains_with_a_real_validation_split(tmp_path, capsys):
    """The most common plain corpus: one sentence per line, no blank lines. It used to be read as one
    document, so the validation split was empty and the run stopped."""
    from helpers import sample_texts

    from hfmicro.training.run import pretrain

    sentences = [s.strip() + "." for p in sample_texts(200_000) for s in p.split(". ") if len(s) > 20]
    corpus = tmp_path / "verses.txt"
    corpus.write_text("\n".join(sentences) + "\n")
    out = str(tmp_path / "run")
    assert pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", out,
                            "--dataset", str(corpus), "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2",
                            "--eval_on_start", "false"]) == 0
    captured = capsys.readouterr()
    assert "no blank lines, so one document per line" in captured.err
    summary = next(line for line in captured.out.splitlines() if line.startswith("[hfmicro] data "))
    train_docs, validation_docs = (int(re.search(rf"{split} ([\d,]+) docs", summary).group(1).replace(",", ""))
                                   for split in ("train", "validation"))
    assert train_docs + validation_docs == len(sentences) and validation_docs > 0.02 * len(sentences)
    # the demo asks about the run's own text, not the shipped sentences about Python's documentation
    demo = captured.out.split("[hfmicro] fill-mask demo:\n")[1].splitlines()[:3]
    corpus_text = corpus.read_text()
    for line in demo:
        left, right = line.strip().split("  ->  ")[0].split("[MASK]")
        assert left.strip() and left in corpus_text and right in corpus_text, line
    assert "The function returns a [MASK]" not in captured.out
    tokenizer = tmp_path / "tokenizer"
    subprocess.run([sys.executable, os.path.join(ROOT, "tokenizers", "train_bpe.py"), "--dataset", str(corpus),
                    "--vocab_size", "2000", "--model_type", "bert", "--output_dir", str(tokenizer)], check=True,
                   capture_output=True, timeout=300)
    report = json.load(open(tokenizer / "training_report.json"))
    assert report["docs_seen"] == train_docs and report["fertility"]["docs"] == validation_docs


@pytest.mark.slow  # trains
def test_skipped_rows_are_shown_and_recorded(tmp_path, capsys):
    from helpers import sample_texts

    from hfmicro.training.run import pretrain

    corpus = tmp_path / "corpus.jsonl"
    with open(corpus, "wb") as f:
        for i, text in enumerate(sample_texts(120_000)):
            f.write(json.dumps({"text": text}).encode() + b"\n")
            if i % 50 == 7:
                f.write(b'{"text": "broken\n' if i % 100 == 7 else b'{"text": "bad \xff byte"}\n')
    out = tmp_path / "run"
    assert pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", str(out),
                            "--dataset", str(corpus), "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2",
                            "--eval_on_start", "false"]) == 0
    summary = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("[hfmicro] data "))
    results = json.loads((out / "eval_results.json").read_text())
    bad = results["data_bad_rows"]
    reasons = results["data_bad_row_reasons"]
    assert bad > 0 and set(reasons) == {"invalid UTF-8", "malformed JSON"} and sum(reasons.values()) == bad
    rows = bad + results["data_documents"] + results["data_empty_documents"]
    breakdown = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda r: -r[1]))  # most first
    # the one line printed before training: how many of how many, why, and where the first one is
    assert f"skipped {bad} of {rows} rows: {breakdown}; first at {corpus}:9 (malformed JSON" in summary
    assert results["data_bad_row_examples"][0].startswith(f"{corpus}:9")
    assert f"skipped {bad} of {rows} rows: {breakdown}" in (out / "README.md").read_text()
