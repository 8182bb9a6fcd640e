"""Runs that survive: a run killed (SIGKILL, SIGTERM, SIGINT) and relaunched with the same command ends
exactly where an uninterrupted run ends; a diverging run stops; a finished run stays finished; one
writer per output_dir."""

import json
import os
import re
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from helpers import ENV, ROOT, run_command

pytestmark = pytest.mark.slow  # every test launches training processes

RECIPE = {"mlm": ("pretrain_mlm.py", "microbert-debug.yaml"), "clm": ("pretrain_clm.py", "microgpt-debug.yaml")}
# short, with a checkpoint every 5 steps and every step logged: kill points fall anywhere
SHORT = ["--max_steps", "40", "--save_steps", "5", "--eval_steps", "5", "--logging_steps", "1", "--max_eval_samples", "64",
         "--eval_on_start", "false", "--save_total_limit", "3"]
COMPARED = ("loss", "grad_norm", "learning_rate", "eval_loss", "eval_accuracy")


def command(objective, out, *extra):
    script, recipe = RECIPE[objective]
    return [sys.executable, os.path.join(ROOT, "recipes", script), "--config", os.path.join(ROOT, "recipes", recipe),
            "--output_dir", out, *SHORT, *extra]


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
        run_command(command(objective, out))
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
    log = run_command(command(objective, out))
    assert "resuming from" in log or "completing the final save" in log, log[-2000:]
    assert_same_run(out, reference[objective])


def accelerate_command(config, objective, out, *extra):
    script, recipe = RECIPE[objective]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            os.path.join(ROOT, "accelerate_configs", config), os.path.join(ROOT, "recipes", script),
            "--config", os.path.join(ROOT, "recipes", recipe), "--output_dir", out, *SHORT, *extra]


def stopped_step(output):
    line = next((line for line in output.splitlines() if "[hfmicro] stopped at step" in line), None)
    assert line, output[-3000:]
    return int(line.split("stopped at step ")[1].split(":")[0])


@pytest.mark.parametrize("objective,sig", [("mlm", signal.SIGTERM), ("clm", signal.SIGINT)])
def test_signal_to_the_training_process_saves_a_checkpoint_and_resumes_exactly(objective, sig, reference, tmp_path):
    out = str(tmp_path / "preempted")
    code, output = kill_after_checkpoint(command(objective, out), out, 5, sig=sig)
    assert code == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], output[-2000:]
    step = stopped_step(output)
    assert step in complete_checkpoints(out) and step > 5  # a checkpoint at the step where it stopped
    assert not os.path.exists(os.path.join(out, "model.safetensors"))  # no final model from a stopped run
    log = run_command(command(objective, out))
    assert f"resuming from {out}/checkpoint-{step}" in log
    assert_same_run(out, reference[objective])


def test_sigterm_to_accelerate_launch_reaches_the_training_process(reference, tmp_path):
    """accelerate's single-process launcher exits on SIGTERM at once; the training process still saves."""
    import psutil

    out = str(tmp_path / "launched")
    cmd = accelerate_command("cpu.yaml", "mlm", out)
    process = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not complete_checkpoints(out):
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    trainers = psutil.Process(process.pid).children(recursive=True)
    assert trainers
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=240)  # the pipe closes when the training process exits too
    gone, alive = psutil.wait_procs(trainers, timeout=120)
    assert not alive
    step = stopped_step(output)
    assert step in complete_checkpoints(out)
    run_command(command("mlm", out))
    assert_same_run(out, reference["mlm"])


def test_sigterm_under_two_rank_ddp_stops_every_rank_at_one_step(tmp_path):
    out = str(tmp_path / "ddp")
    code, output = kill_after_checkpoint(accelerate_command("cpu_ddp.yaml", "mlm", out), out, 5, sig=signal.SIGTERM,
                                         delay=0.2)
    step = stopped_step(output)
    checkpoint = os.path.join(out, f"checkpoint-{step}")
    assert {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors"} <= set(os.listdir(checkpoint))
    log = run_command(accelerate_command("cpu_ddp.yaml", "mlm", out), timeout=400)
    assert f"resuming from {checkpoint}" in log
    assert "process 0/2 finished at step 40" in log and "process 1/2 finished at step 40" in log


def test_a_huge_learning_rate_stops_at_the_first_non_finite_step(tmp_path):
    out = str(tmp_path / "diverged")
    result = subprocess.run(command("mlm", out, "--learning_rate", "1e4"), cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 3, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("hfmicro: error: non-finite gradient norm") and "at step" in message
    assert "last good checkpoint" in message
    assert not os.path.exists(os.path.join(out, "model.safetensors"))
    assert not os.path.exists(os.path.join(out, "eval_results.json"))
    for step in complete_checkpoints(out):  # whatever was saved before is finite
        weights = load_file(os.path.join(out, f"checkpoint-{step}", "model.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.fixture
def nan_at_step(monkeypatch):
    """Make the loss NaN in the forward pass of one optimizer step (through the real training loop)."""
    from hfmicro.training.trainer import PretrainingTrainer

    original = PretrainingTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if self.state.global_step + 1 == 4:
            loss = loss * float("nan") if not isinstance(loss, tuple) else (loss[0] * float("nan"), *loss[1:])
        return loss

    monkeypatch.setattr(PretrainingTrainer, "compute_loss", poisoned)


def in_process(out, *extra):
    from hfmicro.training.run import pretrain

    script, recipe = RECIPE["mlm"]
    return pretrain("mlm", ["--config", os.path.join(ROOT, "recipes", recipe), "--output_dir", out,
                            *SHORT, "--max_steps", "8", "--save_steps", "3", "--eval_steps", "3", *extra])


def test_an_injected_nan_stops_the_run_or_is_skipped_when_allowed(nan_at_step, tmp_path, capsys):
    stopped = str(tmp_path / "stopped")
    assert in_process(stopped) == 3
    err = capsys.readouterr().err
    assert "non-finite gradient norm (nan) at step 4" in err and f"{stopped}/checkpoint-3" in err
    assert sorted(complete_checkpoints(stopped)) == [3] and not os.path.exists(os.path.join(stopped, "model.safetensors"))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the run gave the signal back

    skipped = str(tmp_path / "skipped")
    assert in_process(skipped, "--max_nonfinite_steps", "1", "--save_steps", "1", "--eval_steps", "1",
                      "--save_total_limit", "20") == 0
    assert "step 4: non-finite gradient norm (nan), step skipped" in capsys.readouterr().out
    results = json.load(open(os.path.join(skipped, "eval_results.json")))
    assert results["nonfinite_steps_skipped"] == 1 and results["global_step"] == 8
    assert all(torch.isfinite(w).all() for w in final_weights(skipped).values())
    history = json.load(open(os.path.join(skipped, "training_history.json")))
    assert any(r.get("nonfinite_steps_skipped") == 1 for r in history)
    # the skipped step changed nothing (not even weight decay); the steps around it did
    after = [load_file(os.path.join(skipped, f"checkpoint-{step}", "model.safetensors")) for step in (3, 4, 5)]
    assert all(torch.equal(after[0][k], after[1][k]) for k in after[0])
    assert not all(torch.equal(after[1][k], after[2][k]) for k in after[1])


def test_a_finished_run_stays_finished(reference, tmp_path):
    out = str(tmp_path / "done")
    subprocess.run(["cp", "-r", reference["mlm"], out], check=True)
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)}
    log = run_command(command("mlm", out))
    assert "already finished at step 40: nothing to do" in log
    assert {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)} == before


def test_a_run_killed_before_its_final_save_completes_it_without_training(reference, tmp_path):
    out = str(tmp_path / "unfinished")
    code, _ = kill_after_checkpoint(command("mlm", out), out, 40, delay=0.0)
    assert code == -signal.SIGKILL
    assert json.load(open(os.path.join(out, "checkpoint-40", "trainer_state.json")))["global_step"] == 40
    log = run_command(command("mlm", out))
    assert "training ended at step 40; completing the final save" in log
    assert max(complete_checkpoints(out)) == 40  # no step 41
    assert json.load(open(os.path.join(out, "eval_results.json")))["global_step"] == 40
    assert_same_run(out, reference["mlm"])
    assert not os.path.exists(os.path.join(out, ".final-staging"))


def test_one_writer_per_output_dir(tmp_path):
    out = str(tmp_path / "shared")
    first = subprocess.Popen(command("mlm", out, "--max_steps", "100000"), cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(out, ".hfmicro-run.lock")):
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # alive and holding the lock, but off the 2 cores the second needs
        second = subprocess.run(command("mlm", out), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2
        message = second.stderr.strip().splitlines()[-1]
        assert f"is in use by pid {first.pid}" in message and "Traceback" not in second.stderr
        assert first.poll() is None  # the live run goes on
    finally:
        first.kill()
        first.wait()
    third = run_command(command("mlm", out, "--max_steps", "3", "--force_fresh", "true"))
    assert f"took over the lock of a run that is no longer running (pid {first.pid}" in third
    assert not os.path.exists(os.path.join(out, ".hfmicro-run.lock"))  # released at the end


def test_complete_checkpoints_are_what_trainer_writes_last(tmp_path):
    from hfmicro.training.checkpoints import latest_complete_checkpoint

    assert latest_complete_checkpoint(str(tmp_path)) is None

    def checkpoint(step, state=None, weights="model.safetensors", marker=False):
        folder = tmp_path / f"checkpoint-{step}"
        (folder / os.path.dirname(weights)).mkdir(parents=True, exist_ok=True)
        (folder / weights).write_bytes(b"x")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
        if marker:
            (folder / "checkpoint-is-incomplete.txt").write_text("in progress")

    checkpoint(10, json.dumps({"global_step": 10}))
    checkpoint(20, json.dumps({"global_step": 20}), weights="pytorch_model_fsdp_0/.metadata")  # FSDP sharded
    checkpoint(30)  # killed while saving: no trainer state yet
    checkpoint(40, '{"global_st')  # killed while writing the state
    checkpoint(50, json.dumps({"global_step": 50}), marker=True)  # a just-in-time checkpoint cut short
    checkpoint(60, json.dumps({"global_step": 60}), weights="pytorch_model_fsdp_0/__0_0.distcp")  # no .metadata
    assert latest_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-20")


def write_corpus(path, megabytes):
    """Real prose (Python's pydoc topics), shuffled into a jsonl corpus of about `megabytes`."""
    from helpers import sample_texts

    paragraphs = sample_texts(400_000)
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < megabytes * 1e6:
            line = json.dumps({"text": " ".join(rng.sample(paragraphs, 3))}) + "\n"
            f.write(line)
            written += len(line)
    return str(path)


def test_data_preparation_longer_than_the_ddp_timeout_does_not_kill_the_launch(tmp_path):
    """Rank 0 prepares 8 MB for longer than --ddp_timeout (2 s, honoured on CPU ranks too); rank 1 waits
    for the cache without a collective."""
    corpus = write_corpus(tmp_path / "corpus.jsonl", 8)
    out = str(tmp_path / "ddp")
    log = run_command(accelerate_command("cpu_ddp.yaml", "mlm", out, "--dataset", corpus, "--ddp_timeout", "2",
                                 "--max_steps", "4", "--save_steps", "4", "--eval_steps", "4"), timeout=400)
    assert "process 0/2 finished at step 4" in log and "process 1/2 finished at step 4" in log


def test_hfmicro_data_prepare_fills_the_cache_that_the_recipe_loads(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 0.3)
    out = str(tmp_path / "run")
    tokenizer = os.path.join(ROOT, "tokenizers", "microbert-8k")
    prepared = run_command(["hfmicro", "data", "prepare", "--objective", "mlm", "--tokenizer", tokenizer, "--dataset", corpus,
                    "--max_seq_length", "64"])
    assert "cache miss" in prepared and "train" in prepared
    log = run_command(command("mlm", out, "--dataset", corpus, "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2"))
    assert "cache hit" in log
    refused = subprocess.run(["hfmicro", "data", "prepare", "--dataset", corpus, "--max_seq_length", "1"], cwd=ROOT,
                             env=ENV, capture_output=True, text=True)
    assert refused.returncode == 2 and "max_seq_length" in refused.stderr.strip().splitlines()[-1]


def test_a_streamed_run_resumes_where_it_stood_without_replaying(tmp_path):
    """--streaming on a local jsonl (the code path of Hub streaming): the checkpoint records the stream
    position, the relaunch restarts the stream there and ends exactly like the uninterrupted run."""
    from helpers import sample_texts

    sentences = [s.strip() + "." for p in sample_texts(300_000) for s in p.split(". ") if len(s) > 20]
    corpus = tmp_path / "sentences.jsonl"
    corpus.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences))  # ~20 tokens a document
    streamed = ["--dataset", str(corpus), "--streaming", "true", "--max_eval_samples", "32"]
    reference = str(tmp_path / "reference")
    run_command(command("mlm", reference, *streamed))
    out = str(tmp_path / "killed")
    code, _ = kill_after_checkpoint(command("mlm", out, *streamed), out, 30, delay=0.0)
    assert code == -signal.SIGKILL
    step = max(complete_checkpoints(out))
    state = json.load(open(os.path.join(out, f"checkpoint-{step}", "stream_state.json")))
    assert state["documents"] >= 1000, state  # restarted after whole tokenizer batches, not from the start
    assert state["blocks"] + state["skip_blocks"] == step * 16  # 16 blocks a step
    log = run_command(command("mlm", out, *streamed))
    assert f"resuming the stream at document {state['documents']:,}" in log
    assert "Skipping the first" not in log  # Trainer's replay of seen batches
    assert_same_run(out, reference)


def test_the_final_save_gathers_full_weights_under_sharded_fsdp(tmp_path, monkeypatch):
    """FSDP2 does not run on CPU ranks here (accelerate turns it off with use_cpu), so this checks our
    branch with a stand-in: under SHARDED_STATE_DICT Trainer's save_model writes nothing at all; ours
    gathers the full state dict (accelerate's get_state_dict) and writes safetensors."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from hfmicro.presets import build_model, preset_config
    from hfmicro.training.arguments import PretrainingArguments
    from hfmicro.training.trainer import PretrainingTrainer

    model = build_model(preset_config("microbert-toy", vocab_size=8000))
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(ROOT, "tokenizers", "microbert-8k"))
    trainer = PretrainingTrainer(model=model, args=PretrainingArguments(output_dir=str(tmp_path), report_to=[], eval_strategy="no",
                                                                               load_best_model_at_end=False),
                                 processing_class=tokenizer)
    sharded = SimpleNamespace(state_dict_type="StateDictType.SHARDED_STATE_DICT")
    monkeypatch.setattr(trainer, "is_fsdp_enabled", True)
    monkeypatch.setattr(type(trainer.accelerator.state), "fsdp_plugin", sharded, raising=False)
    gathered = []
    monkeypatch.setattr(trainer.accelerator, "get_state_dict",
                        lambda m: gathered.append(m) or {k: v.clone() for k, v in m.state_dict().items()})
    trainer.save_model(str(tmp_path / "stock"), _internal_call=True)
    assert not os.path.exists(tmp_path / "stock" / "model.safetensors")  # what Trainer alone would leave
    trainer.save_full_model(str(tmp_path / "final"))
    assert gathered
    weights = load_file(tmp_path / "final" / "model.safetensors")
    assert os.path.exists(tmp_path / "final" / "tokenizer.json")
    state = model.state_dict()
    assert all(torch.equal(weights[k], state[k]) for k in weights)



def test_tokens_seen_is_what_the_model_read(tmp_path, capsys):
    """An epoch whose last batch is partial: tokens seen counts the blocks read (Trainer's own count, which
    TensorBoard and the history get at every log), not steps x a full batch."""
    from helpers import sample_texts

    corpus = tmp_path / "small.txt"
    corpus.write_text("\n\n".join(sample_texts(40_000)))
    out = str(tmp_path / "run")
    assert in_process(out, "--dataset", str(corpus), "--max_steps", "-1", "--num_train_epochs", "1",
                      "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                      "--logging_steps", "1") == 0
    train_blocks = int(re.search(r"train [\d,]+ docs, [\d,]+ tokens, ([\d,]+) blocks", capsys.readouterr().out)
                       .group(1).replace(",", ""))
    assert train_blocks % 16 != 0  # the last batch is partial: the case this test is about
    results = json.load(open(os.path.join(out, "eval_results.json")))
    assert results["tokens_seen"] == train_blocks * 64
    logged = [r["num_input_tokens_seen"] for r in json.load(open(os.path.join(out, "training_history.json")))
              if "loss" in r]
    assert logged[-1] == train_blocks * 64 and logged[0] == 16 * 64
