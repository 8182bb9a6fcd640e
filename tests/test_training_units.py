"""Units of the training job: precision from hardware, MFU arithmetic, batch size from memory,
accuracy metrics without full logits, and what --push_to_hub would push."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from hfmicro.models import flops_per_token
from hfmicro.training.hardware import Hardware, resolve_precision
from hfmicro.metrics import lm_metrics
from hfmicro.models import MicroBertForMaskedLM
from helpers import ROOT, tiny_config

T4 = Hardware("cuda", "Tesla T4", (7, 5), 16 * 2**30)
A10 = Hardware("cuda", "NVIDIA A10", (8, 6), 24 * 2**30)
H100 = Hardware("cuda", "NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30)
CPU = Hardware("cpu", "cpu", None, None)


def test_precision_follows_the_hardware():
    assert resolve_precision("auto", A10) == "bf16"
    assert resolve_precision("auto", H100) == "bf16"
    assert resolve_precision("auto", T4) == "fp16"  # compute capability 7.5: no bf16
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly: autocast on a CPU with bf16
    with pytest.raises(ValueError, match="no bf16 instructions"):
        resolve_precision("bf16", Hardware("cpu", "cpu", None, None, cpu_native_bf16=False))
    with pytest.raises(ValueError, match="bf16 is not supported by Tesla T4"):
        resolve_precision("bf16", T4)
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        resolve_precision("fp16", CPU)


def test_peak_flops_and_flops_per_token():
    assert H100.peak_flops("bf16") == 989e12 and T4.peak_flops("fp16") == 65e12
    assert CPU.peak_flops("fp32") is None and T4.peak_flops("bf16") is None
    config = tiny_config("microgpt")  # 2 layers, d 32, ff 64, vocab 400
    expected = 6 * (2 * (4 * 32 * 32 + 2 * 64 * 32) + 32 * 400) + 12 * 2 * 32 * 128
    assert flops_per_token(config, 128) == expected


def test_auto_batch_size_is_the_largest_power_of_two_that_estimate_says_fits():
    """--auto_batch_size and `hfmicro estimate` share one memory model (the batch size had a formula of its
    own that charged full fp32 logits to every token)."""
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training.memory import activation_cost, fit_batch_size, training_memory

    mlm, config = OBJECTIVES["mlm"], tiny_config("microbert", max_position_embeddings=128)
    params = MicroBertForMaskedLM(config).num_parameters()
    acts = activation_cost(config, 128, mlm, 0.15, "bf16", gradient_checkpointing=False)

    def total(batch, num_gpus=1):
        return sum(training_memory(params, config, mlm, batch, 128, 0.15, acts, num_gpus).values())

    # GPUs of a few hundred MB, so the tiny model's batch depends on them (the CUDA context alone is 0.5 GB)
    gpus = [Hardware("cuda", f"GPU {mb} MB", (8, 0), mb * 10**6) for mb in (600, 700, 900)]
    batches = [fit_batch_size(gpu, config, mlm, 128, 0.15, "bf16", False) for gpu in gpus]
    assert batches[0] < batches[1] < batches[2] and all(b & (b - 1) == 0 for b in batches)  # powers of two
    for gpu, batch in zip(gpus, batches):
        assert total(batch) <= gpu.memory_bytes < total(2 * batch)
    two = fit_batch_size(gpus[2], config, mlm, 128, 0.15, "bf16", False, num_gpus=2)  # DDP's gradient buckets too
    assert total(two, 2) <= gpus[2].memory_bytes < total(2 * two, 2)
    with pytest.raises(ValueError, match="does not fit"):
        fit_batch_size(Hardware("cuda", "GPU 400 MB", (8, 0), 400 * 10**6), config, mlm, 128, 0.15, "bf16", False)


def test_auto_batch_size_plans_for_the_runs_own_precision_and_processes(monkeypatch):
    """An fp16 run's batch was sized for "bf16", and every run's for one process."""
    from types import SimpleNamespace

    from hfmicro.data import DataArguments
    from hfmicro.objectives import OBJECTIVES
    from hfmicro.training import build

    asked = []
    monkeypatch.setattr(build, "fit_batch_size", lambda *args, **kwargs: asked.append(args) or 64)
    args = SimpleNamespace(bf16=False, fp16=True, gradient_checkpointing=False, world_size=2,
                           per_device_train_batch_size=32)
    config = tiny_config("microbert")
    assert build.choose_batch_size(T4, config, OBJECTIVES["mlm"], DataArguments(), args) == 64
    assert asked[0][5:] == ("fp16", False, 2)  # precision, gradient checkpointing, processes
    assert build.choose_batch_size(CPU, config, OBJECTIVES["mlm"], DataArguments(), args) == 32  # no GPU: kept


def test_accuracy_metrics_from_sparse_and_dense_logits():
    compute, preprocess = lm_metrics("mlm")
    labels = torch.tensor([[-100, 5, -100, 7], [3, -100, -100, -100]])
    sparse = torch.zeros(3, 10)
    sparse[0, 5] = sparse[1, 1] = sparse[2, 3] = 1.0  # right, wrong, right
    predictions = preprocess(sparse, labels)
    assert predictions.tolist() == [[-100, 5, -100, 1], [3, -100, -100, -100]]
    dense = torch.zeros(2, 4, 10)
    dense[0, 1, 5] = dense[0, 3, 7] = dense[1, 0, 9] = 1.0
    assert compute(EvalPrediction(predictions.numpy(), labels.numpy()))["accuracy"] == pytest.approx(2 / 3)
    assert compute(EvalPrediction(preprocess(dense, labels).numpy(), labels.numpy()))["accuracy"] == pytest.approx(2 / 3)
    compute_clm, _ = lm_metrics("clm")
    tokens = np.array([[1, 2, 3, 4]])
    shifted_right = np.array([[2, 3, 9, 0]])  # position t predicts token t+1: 2 of 3 right
    assert compute_clm(EvalPrediction(shifted_right, tokens))["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.slow  # trains
def test_push_to_hub_pushes_the_final_folder_without_the_token(tmp_path, monkeypatch):
    from transformers import Trainer

    from hfmicro.training.run import pretrain

    secret = "hf_TESTTOKEN_never_in_outputs"
    monkeypatch.setenv("HF_TOKEN", secret)
    calls = []
    monkeypatch.setattr(Trainer, "init_hf_repo", lambda self, token=None: calls.append(("init", self.args.hub_model_id)))
    monkeypatch.setattr(Trainer, "_push_from_checkpoint", lambda self, folder: calls.append(("checkpoint", folder)))

    def fake_push(self, commit_message=None, **kwargs):
        files = sorted(os.listdir(self.args.output_dir))
        calls.append(("push", self.args.hub_model_id, commit_message, files))

    monkeypatch.setattr(Trainer, "push_to_hub", fake_push)
    out = tmp_path / "run"
    code = pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", str(out),
                            "--max_steps", "10", "--eval_steps", "10", "--save_steps", "10", "--eval_on_start", "false",
                            "--push_to_hub", "true", "--hub_model_id", "someone/microbert-debug"])
    assert code == 0
    assert ("init", "someone/microbert-debug") in calls
    pushes = [c for c in calls if c[0] == "push"]
    assert len(pushes) == 1 and pushes[0][1] == "someone/microbert-debug"
    assert {"model.safetensors", "config.json", "modeling_microbert.py", "tokenizer.json", "README.md"} <= set(pushes[0][3])
    for root, _, files in os.walk(out):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert secret.encode() not in f.read(), name
    args = json.loads((out / "eval_results.json").read_text())
    assert args["global_step"] == 10
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")  # huggingface_hub's own metadata: the Hub indexes the results
    assert card.data.pipeline_tag == "fill-mask" and card.data.library_name == "transformers"
    assert card.data.model_name == "someone/microbert-debug"
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["loss"].metric_value == pytest.approx(args["eval_loss"], abs=1e-4)
    assert results["accuracy"].metric_value == pytest.approx(args["eval_accuracy"], abs=1e-4)
    assert results["loss"].dataset_name == "builtin" and results["loss"].dataset_split == "validation"
    assert 'pipeline("fill-mask", model="someone/microbert-debug"' in card.text  # what users run after the push


def test_hub_token_option_is_refused(tmp_path, capsys):
    from hfmicro.training.run import pretrain

    code = pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir",
                            str(tmp_path), "--hub_token", "hf_xyz"])
    assert code == 2
    assert "HF_TOKEN" in capsys.readouterr().err


@pytest.mark.slow  # trains
def test_early_stopping_keeps_the_best_checkpoint(tmp_path):
    """A learning rate too small to improve anything: training stops after `patience` evaluations without
    improvement, save_total_limit=1 still keeps the best checkpoint, and the final model is the best one."""
    from safetensors.torch import load_file

    from hfmicro.training.run import pretrain

    out = tmp_path / "run"
    code = pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", str(out),
                            "--max_steps", "60", "--eval_steps", "5", "--save_steps", "5", "--eval_on_start", "false",
                            "--learning_rate", "1e-12", "--warmup_steps", "0", "--early_stopping_patience", "2",
                            "--save_total_limit", "1"])
    assert code == 0
    latest = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((latest / "trainer_state.json").read_text())
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] < 60  # stopped early
    best = state["best_model_checkpoint"]
    assert os.path.isdir(best)  # never deleted by save_total_limit
    best_weights, final_weights = load_file(os.path.join(best, "model.safetensors")), load_file(out / "model.safetensors")
    assert all(torch.equal(best_weights[k], final_weights[k]) for k in final_weights)


@pytest.mark.slow  # trains
@pytest.mark.parametrize("objective,recipe", [("mlm", "microbert-debug.yaml"), ("clm", "microgpt-debug.yaml")])
def test_loading_the_best_checkpoint_reports_no_missing_tied_head(objective, recipe, tmp_path, capsys):
    """The tied output head is never saved on its own; Trainer's reload of the best checkpoint (and of the
    checkpoint a run resumes from) must tie it again, not warn that it is missing."""
    import logging.handlers

    from hfmicro.training.run import pretrain

    records = logging.handlers.BufferingHandler(capacity=10_000)
    logging.getLogger("transformers").addHandler(records)  # its own handler writes to the stderr of import time
    out = tmp_path / "run"
    common = ["--config", os.path.join(ROOT, "recipes", recipe), "--output_dir", str(out), "--eval_steps", "2",
              "--save_steps", "2", "--eval_on_start", "false"]
    try:
        assert pretrain(objective, [*common, "--max_steps", "2"]) == 0
        assert pretrain(objective, [*common, "--max_steps", "4"]) == 0  # resumes from checkpoint-2, reloads the best
    finally:
        logging.getLogger("transformers").removeHandler(records)
    assert f"resuming from {out}/checkpoint-2" in capsys.readouterr().out
    assert not [r.getMessage() for r in records.buffer if "missing keys" in r.getMessage()]


@pytest.mark.slow  # trains
def test_tokens_per_second_reaches_tensorboard(tmp_path):
    """Throughput is logged through Trainer.log, so the integrations (TensorBoard, trackio...) get it."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hfmicro.training.run import pretrain

    out = tmp_path / "run"
    assert pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", str(out),
                            "--max_steps", "6", "--logging_steps", "2", "--eval_steps", "6", "--save_steps", "6",
                            "--eval_on_start", "false", "--report_to", "tensorboard"]) == 0
    scalars = set()
    for events in glob.glob(str(out / "**" / "events.out.tfevents.*"), recursive=True):
        scalars |= set(EventAccumulator(events).Reload().Tags()["scalars"])
    assert "train/loss" in scalars and "train/tokens_per_second" in scalars
    history = json.loads((out / "training_history.json").read_text())
    assert all("tokens_per_second" in r for r in history if "loss" in r and r["step"] > 2)


def test_parsing_options_neither_queries_the_hardware_nor_starts_a_process_group(tmp_path, monkeypatch):
    """Options are read without side effects: the run detects the hardware once and hands it in, and starts
    the CPU ranks' process group itself (parsing used to start gloo, and the hardware was detected twice)."""
    import torch.distributed

    from hfmicro.training import arguments, hardware
    from hfmicro.training.arguments import PretrainingArguments, parse_recipe, read_options

    def forbidden(*args, **kwargs):
        raise AssertionError("called while parsing options")

    monkeypatch.setattr(hardware, "detect_hardware", forbidden)
    monkeypatch.setattr(arguments, "detect_hardware", forbidden, raising=False)
    monkeypatch.setattr(torch.distributed, "init_process_group", forbidden)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as a launcher sets it for rank 0 of two CPU ranks
    options = read_options(["--output_dir", str(tmp_path)])
    assert options.precision == "auto" and not (options.bf16 or options.fp16)
    monkeypatch.delenv("WORLD_SIZE")
    args = PretrainingArguments(output_dir=str(tmp_path), report_to=[])
    assert args.precision == "auto" and not (args.bf16 or args.fp16)
    _, _, parsed = parse_recipe(["--output_dir", str(tmp_path)], hardware=CPU)  # settled for the hardware given
    assert parsed.use_cpu and parsed.precision == "fp32" and not (parsed.bf16 or parsed.fp16)


def test_tokens_per_second_leaves_out_evaluation_and_saving(monkeypatch):
    """A log window that contains an evaluation and a checkpoint save reported tokens/s over the wall time
    (1,000 tokens trained in 1 s reported as 77/s); time_to_loss.py sized its baselines' budgets from it."""
    from types import SimpleNamespace

    from hfmicro.training import callbacks

    clock = iter([0.0, 1.0, 1.0, 11.0, 13.0, 14.0, 14.0])  # step, step, log, eval done, save done, step, log
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    cb = callbacks.ThroughputCallback(flops_per_token=1.0, peak_flops_total=None, eta_after=100)
    args, control = SimpleNamespace(), SimpleNamespace()
    state = SimpleNamespace(global_step=1, num_input_tokens_seen=1000, max_steps=10, is_world_process_zero=True)
    cb.on_step_end(args, state, control)
    state.global_step, state.num_input_tokens_seen = 2, 2000
    cb.on_step_end(args, state, control)
    assert cb.window_metrics(2000)["tokens_per_second"] == 1000.0
    cb.on_evaluate(args, state, control, metrics={})
    cb.on_save(args, state, control)
    state.global_step, state.num_input_tokens_seen = 3, 3000
    cb.on_step_end(args, state, control)
    assert cb.window_metrics(3000)["tokens_per_second"] == 1000.0
