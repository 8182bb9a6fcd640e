"""End to end through the real commands: the debug recipes train, learn, resume, run on two CPU
processes, and leave artifacts that load without hfmicro."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from helpers import ROOT, run_command

pytestmark = pytest.mark.slow  # every test launches training processes


def accelerate(config, script, *args):
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            os.path.join(ROOT, "accelerate_configs", config), os.path.join(ROOT, "recipes", script), *args]


def history(out):
    with open(os.path.join(out, "training_history.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mlm") / "run")
    log = run_command(accelerate("cpu.yaml", "pretrain_mlm.py", "--config", os.path.join(ROOT, "recipes", "microbert-debug.yaml"),
                         "--output_dir", out), cwd=ROOT)
    return out, log


def test_mlm_debug_recipe_learns_and_writes_artifacts(mlm_run):
    out, log = mlm_run
    for name in ("model.safetensors", "config.json", "modeling_microbert.py", "tokenizer.json", "README.md",
                 "training_history.json", "training_curves.png", "eval_results.json"):
        assert os.path.exists(os.path.join(out, name)), name
    evals = [r["eval_loss"] for r in history(out) if "eval_loss" in r]
    assert evals[0] > 8.5  # step 0: ~ln(8000), the untrained model
    assert evals[-1] < evals[0] - 1.0  # learned clearly
    assert any("tokens_per_second" in r for r in history(out))
    results = json.load(open(os.path.join(out, "eval_results.json")))
    assert results["global_step"] == 40 and results["probe_size"] >= 200
    card = open(os.path.join(out, "README.md")).read()
    assert f"{results['eval_loss']:.4f}" in card and "pipeline_tag: fill-mask" in card
    assert "world_size=1" in log and "parameters: total" in log and "fill-mask demo" in log
    # accelerate launch set OMP_NUM_THREADS=1; the recipe gives the single process every core back
    assert f"cpu ({os.cpu_count()} threads)" in log


def test_every_parameter_changes_during_training(mlm_run):
    out, _ = mlm_run
    middle = load_file(os.path.join(out, "checkpoint-20", "model.safetensors"))
    final = load_file(os.path.join(out, "model.safetensors"))
    assert middle.keys() == final.keys()
    for name in final:
        assert not torch.equal(middle[name], final[name]), f"{name} did not change"


def test_output_loads_without_hfmicro(mlm_run):
    out, _ = mlm_run
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hfmicro"] = None
        from transformers import pipeline
        fill = pipeline("fill-mask", model={out!r}, trust_remote_code=True)
        predictions = fill("The function returns a [MASK] of the values.")
        assert len(predictions) == 5, predictions
        assert all(p["sequence"].startswith("The function returns a") for p in predictions)
        print("OK", predictions[0]["token_str"])
        """
    )
    assert "OK" in run_command([sys.executable, "-c", script], cwd=os.path.dirname(out))


def test_resume_continues_from_the_newest_checkpoint(mlm_run, tmp_path):
    out, _ = mlm_run
    resumed = str(tmp_path / "resumed")
    subprocess.run(["cp", "-r", out, resumed], check=True)
    log = run_command([sys.executable, os.path.join(ROOT, "recipes", "pretrain_mlm.py"), "--config",
               os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", resumed, "--max_steps", "60"],
              cwd=ROOT)
    assert f"resuming from {resumed}/checkpoint-40" in log
    assert json.load(open(os.path.join(resumed, "eval_results.json")))["global_step"] == 60
    steps = [r["step"] for r in history(resumed) if "loss" in r]
    assert steps == sorted(steps) and steps[0] == 10 and steps[-1] == 60  # the history continues, not restarts
    fresh = run_command([sys.executable, os.path.join(ROOT, "recipes", "pretrain_mlm.py"), "--config",
                 os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", resumed, "--max_steps", "10",
                 "--force_fresh", "--eval_on_start", "false"], cwd=ROOT)
    assert "resuming" not in fresh


def test_clm_debug_recipe_learns_generates_and_reports_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    out = str(tmp_path / "clm")
    log = run_command([sys.executable, os.path.join(ROOT, "recipes", "pretrain_clm.py"), "--config",
               os.path.join(ROOT, "recipes", "microgpt-debug.yaml"), "--output_dir", out, "--report_to", "tensorboard"],
              cwd=ROOT)
    evals = [r["eval_loss"] for r in history(out) if "eval_loss" in r]
    assert evals[-1] < evals[0] - 1.0
    assert "generation demo" in log
    assert "pipeline_tag: text-generation" in open(os.path.join(out, "README.md")).read()
    events = [f for _, _, files in os.walk(os.path.join(out, "runs")) for f in files if f.startswith("events.out")]
    assert events  # Trainer's TensorBoard callback wrote the curves


def test_two_cpu_processes_with_ddp(tmp_path):
    out = str(tmp_path / "ddp")
    log = run_command(accelerate("cpu_ddp.yaml", "pretrain_mlm.py", "--config",
                         os.path.join(ROOT, "recipes", "microbert-debug.yaml"), "--output_dir", out,
                         "--max_steps", "10", "--eval_on_start", "false", "--save_steps", "10", "--eval_steps", "10"),
              cwd=ROOT, timeout=400)
    assert "world_size=2" in log
    assert "process 0/2 finished at step 10" in log and "process 1/2 finished at step 10" in log
    files = sorted(os.listdir(out))
    assert files.count("model.safetensors") == 1 and "checkpoint-10" in files
    assert not [f for f in files if "rank" in f]
