"""Runs that survive: a run killed (SIGKILL, SIGTERM, SIGINT) and relaunched with the same command ends
exactly where an uninterrupted run ends; a diverging run stops; a finished run stays finished; one
writer per output_dir."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
RECIPE = {"mlm": ("pretrain_mlm.py", "microbert-debug.yaml"), "clm": ("pretrain_clm.py", "microgpt-debug.yaml")}
# short, with a checkpoint every 5 steps and every step logged: kill points fall anywhere
SHORT = ["--max_steps", "40", "--save_steps", "5", "--eval_steps", "5", "--logging_steps", "1", "--max_eval_samples", "64",
         "--eval_on_start", "false", "--save_total_limit", "3"]
COMPARED = ("loss", "grad_norm", "learning_rate", "eval_loss", "eval_accuracy")


def command(objective, out, *extra):
    script, recipe = RECIPE[objective]
    return [sys.executable, os.path.join(ROOT, "recipes", script), "--config", os.path.join(ROOT, "recipes", recipe),
            "--output_dir", out, *SHORT, *extra]


def run(cmd, expect=0, timeout=300):
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == expect, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


def complete_checkpoints(out):
    steps = []
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if name.startswith("checkpoint-") and os.path.exists(os.path.join(out, name, "trainer_state.json")):
            steps.append(int(name.split("-")[1]))
    return steps


def kill_after_checkpoint(cmd, out, at_least, sig=signal.SIGKILL, delay=None):
    """Start `cmd`, wait until it wrote a complete checkpoint >= `at_least`, wait a random fraction of a
    checkpoint interval (or `delay`), send `sig`, and return the process's exit code and output."""
    at_least = max([at_least - 1, *complete_checkpoints(out)]) + 1
    process = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not any(s >= at_least for s in complete_checkpoints(out)):
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.3) if delay is None else delay)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=240)
    return process.returncode, output


def final_weights(out):
    return load_file(os.path.join(out, "model.safetensors"))


def logged(out):
    with open(os.path.join(out, "training_history.json")) as f:
        return {(r["step"], k): r[k] for r in json.load(f) for k in COMPARED if k in r}


def assert_same_run(out, reference):
    ours, theirs = final_weights(out), final_weights(reference)
    assert ours.keys() == theirs.keys()
    worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
    assert worst <= 1e-6, f"final weights differ by {worst}"
    a, b = logged(out), logged(reference)
    assert a.keys() == b.keys()
    differing = {key: (a[key], b[key]) for key in a if abs(a[key] - b[key]) > 1e-6}
    assert not differing, f"logged values differ after the resume: {sorted(differing.items())[:5]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs, one per objective."""
    runs = {}
    for objective in RECIPE:
        out = str(tmp_path_factory.mktemp(objective) / "reference")
        run(command(objective, out))
        runs[objective] = out
    return runs


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_sigkill_at_three_random_steps_then_resume_is_exact(objective, reference, tmp_path):
    out = str(tmp_path / "killed")
    random.seed(objective)
    for i, at_least in enumerate((5, 10, 15)):  # three kills, each after a later checkpoint, a random step after it
        code, output = kill_after_checkpoint(command(objective, out), out, at_least)
        assert code == -signal.SIGKILL, output[-2000:]
        assert i == 0 or "resuming from" in output
    log = run(command(objective, out))
    assert "resuming from" in log or "completing the final save" in log, log[-2000:]
    assert_same_run(out, reference[objective])
