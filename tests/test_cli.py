"""The `hfmicro` command: fast help, and each verb on tiny artifacts made here."""

import copy
import json
import math
import os
import subprocess
import sys
import warnings

import pytest

from helpers import ROOT

HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate")


def modules_after(code: str) -> set[str]:
    """The heavy packages a fresh interpreter has imported after running `code`."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1])) & set(HEAVY)


def test_import_hfmicro_cli_imports_no_heavy_package():
    assert modules_after("import hfmicro.cli") == set()


def test_every_help_answers_without_importing_torch_or_transformers():
    from hfmicro.cli import VERB_MODULES, build_parser

    verbs = [name for name in build_parser()._subparsers._group_actions[0].choices]
    # every verb module's verbs, in `hfmicro --help`'s order
    assert verbs == ["configs", "train-bpe", "data", "cache", "estimate", "evaluate", "fill-mask", "generate", "compare"]
    assert len(VERB_MODULES) == 8  # inference.py registers two
    for argv in [[]] + [[verb] for verb in verbs]:
        code = ("from hfmicro.cli import main\ntry:\n    main(" + repr([*argv, "--help"]) + ")\n"
                "except SystemExit as e:\n    assert e.code == 0, e.code")
        assert modules_after(code) == set(), argv


def test_the_models_are_registered_with_the_auto_classes_when_used():
    assert modules_after("import hfmicro") == set()  # importing the package alone is cheap
    code = ("from hfmicro import MicroBertConfig\nfrom transformers import AutoConfig\n"
            "assert type(AutoConfig.for_model('microbert')) is MicroBertConfig")
    assert "transformers" in modules_after(code)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory, bert_tokenizer, gpt_tokenizer):
    """Tiny MicroBERT, stock BERT (with a '<mask>' tokenizer), MicroGPT and stock GPT-2, saved as a user would."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from helpers import tiny_model

    root = tmp_path_factory.mktemp("models")
    folders = {}
    for name, family, tokenizer in [("bert", "microbert", bert_tokenizer), ("gpt", "microgpt", gpt_tokenizer)]:
        ids = dict(pad_token_id=tokenizer.pad_token_id) | (
            dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id) if family == "microgpt" else {})
        model = tiny_model(family, vocab_size=len(tokenizer), **ids)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = str(root / name)
    roberta_style = copy.deepcopy(bert_tokenizer)
    roberta_style.add_special_tokens({"mask_token": "<mask>"})  # the user still writes [MASK]
    torch.manual_seed(0)
    stock = BertForMaskedLM(BertConfig(vocab_size=len(roberta_style), hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64)).eval()
    stock.save_pretrained(root / "stock")
    roberta_style.save_pretrained(root / "stock")
    folders["stock"] = str(root / "stock")
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(gpt_tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                      bos_token_id=gpt_tokenizer.eos_token_id, eos_token_id=gpt_tokenizer.eos_token_id))
    gpt2.save_pretrained(root / "gpt2")
    gpt_tokenizer.save_pretrained(root / "gpt2")
    folders["gpt2"] = str(root / "gpt2")
    return folders


def run_cli(capsys, argv):
    from hfmicro.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("which", ["bert", "stock"])
def test_fill_mask_gives_the_models_own_probabilities(tiny_folders, capsys, which):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = tiny_folders[which]
    code, out, _ = run_cli(capsys, ["fill-mask", folder, "The function returns a [MASK] of the values.",
                                    "--top_k", "4", "--json"])
    assert code == 0
    predictions = json.loads(out)["masks"][0]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    enc = tokenizer(f"The function returns a {tokenizer.mask_token} of the values.", return_tensors="pt")
    enc.pop("token_type_ids", None)
    with torch.no_grad():
        probs = model(**enc).logits[0, enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)].softmax(-1)
    top = probs.topk(4)
    assert [p["token"] for p in predictions] == [tokenizer.decode([int(i)]) for i in top.indices]
    assert [p["probability"] for p in predictions] == pytest.approx(top.values.tolist(), abs=1e-5)
    code, out, _ = run_cli(capsys, ["fill-mask", folder, "A [MASK] and a [MASK].", "--top_k", "2"])
    assert code == 0 and "mask 2:" in out and len([l for l in out.splitlines() if l.startswith("  ")]) == 4


def test_generate_greedy_matches_generate_and_reports_probabilities(tiny_folders, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_folders["gpt"]
    code, out, _ = run_cli(capsys, ["generate", folder, "The module provides", "--temperature", "0",
                                    "--max_new_tokens", "12", "--json"])
    assert code == 0
    sample = json.loads(out)["samples"][0]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = tokenizer("The module provides", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        greedy = model.generate(prompt, max_new_tokens=12, do_sample=False)[0, prompt.shape[1] :]
        logits = model(torch.cat([prompt[0], greedy])[None]).logits[0]
    assert sample["text"] == tokenizer.decode(greedy, skip_special_tokens=True)
    expected = logits[prompt.shape[1] - 1 : -1].softmax(-1).gather(-1, greedy[:, None])[:, 0]
    assert [t["probability"] for t in sample["tokens"]] == pytest.approx(expected.tolist(), abs=1e-5)
    # greedy takes the most likely token: every probability is the maximum of its distribution
    assert all(p >= q - 1e-6 for p, q in zip(expected.tolist(), logits[prompt.shape[1] - 1 : -1].softmax(-1).max(-1).values))
    assert 0 <= sample["repeated_4grams"] <= 1 and 0 < sample["distinct_2"] <= 1

    argv = ["generate", folder, "If the value is", "--num_return_sequences", "3", "--max_new_tokens", "8", "--json"]
    first, second = (json.loads(run_cli(capsys, argv)[1])["samples"] for _ in range(2))
    assert len(first) == 3 and first == second  # seeded: the same samples again
    code, out, _ = run_cli(capsys, argv[:-1])
    assert code == 0 and out.count("mean token probability") == 3


def test_repetition_measures():
    from hfmicro.pipelines import repetition

    assert repetition([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]) == {"repeated_4grams": 5 / 9, "distinct_2": 4 / 11}
    assert repetition(list(range(10))) == {"repeated_4grams": 0.0, "distinct_2": 1.0}


@pytest.mark.parametrize(
    "argv,word",
    [
        (["fill-mask", "no/such/folder", "a [MASK]"], "no/such/folder"),
        (["fill-mask", "BERT", "no mask here"], "[MASK]"),
        (["generate", "BERT", "hello"], "text-generation"),
        (["generate", "./missing", "hello"], "./missing"),
    ],
)
def test_tool_errors_are_one_line_with_exit_code_2(tiny_folders, capsys, argv, word):
    argv = [tiny_folders["bert"] if a == "BERT" else a for a in argv]
    code, _, err = run_cli(capsys, argv)
    assert code == 2 and err.startswith("hfmicro: error: ") and word in err and "Traceback" not in err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real 6-step MicroBERT runs that differ in weight decay and masking rate."""
    from hfmicro.training.run import pretrain

    root = tmp_path_factory.mktemp("runs")
    runs = []
    for name, extra in [("wd-1e-4", ["--weight_decay", "1e-4"]), ("wd-1e-5", ["--weight_decay", "1e-5",
                                                                                "--mlm_probability", "0.3"])]:
        out = root / name
        assert pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir",
                                str(out), "--max_steps", "6", "--eval_steps", "3", "--save_steps", "6",
                                "--logging_steps", "2", *extra]) == 0
        runs.append(str(out))
    return runs


@pytest.mark.slow  # trains
def test_compare_tabulates_what_differs_and_draws_the_curves(two_runs, capsys, tmp_path):
    png = tmp_path / "c.png"
    code, out, _ = run_cli(capsys, ["compare", *two_runs, "--out", str(png), "--json"])
    assert code == 0
    report = json.loads(out)
    assert set(report["differing_settings"]) >= {"weight_decay", "mlm_probability"}
    assert "learning_rate" not in report["differing_settings"] and "output_dir" not in report["differing_settings"]
    assert [r["settings"]["weight_decay"] for r in report["runs"]] == [1e-4, 1e-5]
    assert report["loss_comparable"] is False  # 20 % vs 30 % masked
    for run, folder in zip(report["runs"], two_runs):
        results = json.loads(open(os.path.join(folder, "eval_results.json")).read())
        assert run["final"]["eval_loss"] == results["eval_loss"] and run["global_step"] == 6
        assert run["tokens_seen"] == results["tokens_seen"] == 6 * 16 * 64
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] >= 800 and len(set(image.convert("L").get_flattened_data())) > 10  # a drawn figure, not blank

    code, out, _ = run_cli(capsys, ["compare", *two_runs, "--out", str(tmp_path / "t.png"), "--x", "tokens"])
    assert code == 0 and "weight_decay" in out and "not directly comparable" in out and "eval_loss" in out


@pytest.mark.slow  # trains
def test_compare_refuses_a_folder_without_history(two_runs, capsys, tmp_path):
    code, _, err = run_cli(capsys, ["compare", two_runs[0], str(tmp_path)])
    assert code == 2 and "training_history.json" in err and err.startswith("hfmicro: error: ")
    code, _, err = run_cli(capsys, ["compare", str(tmp_path / "nope")])
    assert code == 2 and "nope" in err


def expected_scores(folder, objective, length, blocks, batch_size=32):
    """Loss and accuracy computed by hand on the same packed blocks: what `hfmicro evaluate` must report."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    from hfmicro.data import DataArguments, load_lm_datasets

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = (AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM).from_pretrained(folder).eval()
    data = load_lm_datasets(DataArguments(max_seq_length=length, static_masking=objective == "mlm"), tokenizer,
                            objective)["validation"].select(range(blocks))
    total_loss = correct = scored = 0.0
    for start in range(0, blocks, batch_size):
        rows = data[start : start + batch_size]
        ids = torch.tensor(rows["input_ids"])
        labels = torch.tensor(rows["labels"]) if objective == "mlm" else ids.clone()
        with torch.no_grad():
            out = model(input_ids=ids, labels=labels)
            logits = model(input_ids=ids).logits  # dense logits, also for the sparse MLM head
        total_loss += out.loss.item() * len(ids)  # Trainer averages batch losses weighted by batch size
        if objective == "clm":
            logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != -100
        correct += (logits.argmax(-1)[mask] == labels[mask]).sum().item()
        scored += mask.sum().item()
    return total_loss / blocks, correct / scored, int(scored)


@pytest.mark.parametrize("which,objective", [("bert", "mlm"), ("stock", "mlm"), ("gpt", "clm"), ("gpt2", "clm")])
def test_evaluate_scores_any_model_on_the_same_windows(tiny_folders, capsys, which, objective, monkeypatch, tmp_path):
    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path / "cache"))
    folder = tiny_folders[which]
    code, out, _ = run_cli(capsys, ["evaluate", folder, "--max_seq_length", "32", "--max_blocks", "40", "--json"])
    assert code == 0
    result = json.loads(out)
    loss, accuracy, scored = expected_scores(folder, objective, 32, 40)
    assert result["objective"] == objective and result["blocks"] == 40 and result["scored_tokens"] == scored
    assert result["loss"] == pytest.approx(loss, rel=1e-4) and result["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
    if objective == "mlm":  # fixed masks at 15 %: about that share of the non-[CLS] tokens is scored
        assert 0.10 < scored / (40 * 31) < 0.20 and result["mlm_probability"] == 0.15


def test_evaluate_uses_the_same_masks_for_every_model_and_refuses_bad_input(tiny_folders, capsys, tmp_path):
    import shutil

    from helpers import tiny_model

    other = tmp_path / "other"
    shutil.copytree(tiny_folders["bert"], other)
    tiny_model("microbert", seed=1, vocab_size=json.load(open(other / "config.json"))["vocab_size"],
               pad_token_id=json.load(open(other / "config.json"))["pad_token_id"]).save_pretrained(other)
    argv = ["--max_seq_length", "32", "--max_blocks", "40", "--mlm_probability", "0.3", "--json"]
    first = json.loads(run_cli(capsys, ["evaluate", tiny_folders["bert"], *argv])[1])
    second = json.loads(run_cli(capsys, ["evaluate", str(other), *argv])[1])
    assert first["scored_tokens"] == second["scored_tokens"] and first["loss"] != second["loss"]
    code, _, err = run_cli(capsys, ["evaluate", str(tmp_path / "missing")])
    assert code == 2 and "missing" in err and err.startswith("hfmicro: error: ")
    code, _, err = run_cli(capsys, ["evaluate", tiny_folders["bert"], "--max_seq_length", "4096"])
    assert code == 2 and "max_seq_length" in err


def estimate_json(capsys, *argv):
    code, out, err = run_cli(capsys, ["estimate", "--json", "--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"),
                                      *argv])
    assert code == 0, err
    return json.loads(out)


def test_estimate_counts_parameters_exactly_and_memory_by_part(capsys):
    from hfmicro.models import count_parameters
    from hfmicro.presets import build_model
    from hfmicro.training.arguments import parse_recipe
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training.build import load_tokenizer, model_config

    mlm = OBJECTIVES["mlm"]
    r = estimate_json(capsys, "--gpu", "a10")
    m, d, _ = parse_recipe(["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml")])
    config = model_config(m, d, load_tokenizer(mlm.tokenizer, mlm), mlm)
    params = count_parameters(build_model(config))["total"]
    assert r["parameters"]["total"] == params and r["precision"] == "bf16" and r["device"] == "NVIDIA A10"
    parts = r["memory_bytes"]
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == (4 * params, 4 * params, 8 * params)
    assert r["memory_total_bytes"] == pytest.approx(sum(parts.values()))
    assert parts["margin"] == pytest.approx(0.1 * (r["memory_total_bytes"] - parts["margin"]))
    assert r["tokens_per_step"] == 16 * 64 and r["steps"] == 40 and r["fits"] is True
    # time = tokens / (MFU x peak / FLOPs per token), A10 bf16 peak 125 TFLOP/s, MFU by size (20 % below 10M)
    assert r["mfu"] == 0.2 and r["hours"] == pytest.approx(40 * 1024 * r["flops_per_token"] / (0.2 * 125e12) / 3600)


def test_estimate_activations_scale_with_the_batch_and_shrink_with_checkpointing(capsys):
    small = estimate_json(capsys, "--gpu", "cpu")
    double = estimate_json(capsys, "--gpu", "cpu", "--per_device_train_batch_size", "32")
    per_sequence = small["activation_bytes_per_sequence"]
    assert per_sequence > 0 and double["activation_bytes_per_sequence"] == per_sequence
    assert double["memory_bytes"]["activations"] - small["memory_bytes"]["activations"] == pytest.approx(16 * per_sequence)
    wide = ["--gpu", "cpu", "--hidden_size", "256", "--intermediate_size", "1024", "--num_hidden_layers", "6"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpointed = estimate_json(capsys, *wide, "--gradient_checkpointing", "true")
    assert not [w for w in caught if "checkpointing_enable" in str(w.message)]  # not through a deprecated alias
    plain = estimate_json(capsys, *wide)
    assert checkpointed["memory_bytes"]["activations"] < 0.6 * plain["memory_bytes"]["activations"]
    eight = estimate_json(capsys, "--gpu", "h100", "--num_gpus", "8", "--gradient_accumulation_steps", "2")
    assert eight["tokens_per_step"] == 16 * 64 * 2 * 8 and "ddp_buckets" in eight["memory_bytes"]
    huge = estimate_json(capsys, "--gpu", "t4", "--per_device_train_batch_size", "200000")
    assert huge["fits"] is False and huge["precision"] == "fp16"  # a T4 has no bf16


def test_estimate_measures_tokens_per_second_and_refuses_bad_options(capsys):
    measured = estimate_json(capsys, "--gpu", "cpu", "--measure")
    assert measured["tokens_per_second"] > 0 and measured["tokens_per_second_source"] == "measured here"
    assert measured["hours"] == pytest.approx(40 * 1024 / measured["tokens_per_second"] / 3600)
    code, _, err = run_cli(capsys, ["estimate", "--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"),
                                    "--not_a_field", "1"])
    assert code == 2 and "not_a_field" in err and err.startswith("hfmicro: error: ")
