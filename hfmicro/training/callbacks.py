"""Trainer callbacks: throughput and MFU, the start banner and ETA, demos, the training history, and
preemption (SIGTERM / SIGINT)."""

import math
import os
import signal
import time

import torch
from transformers import TrainerCallback

from ..atomic import write_json_atomic


class ThroughputCallback(TrainerCallback):
    """Measures tokens/s (all processes, from Trainer's own count of the tokens read, over training time:
    evaluations and checkpoint saves left out) and MFU (where the GPU's peak is known) for every training
    log, and prints the estimated training time once the first steps are measured."""

    def __init__(self, flops_per_token: float, peak_flops_total: float | None, eta_after: int = 5):
        self.flops_per_token = flops_per_token
        self.peak = peak_flops_total
        self.eta_after = eta_after
        self._t0 = self._step0 = None
        self._window_t = self._window_tokens = None
        self._last_step_end, self._paused = None, 0.0  # evaluation and saving are not training time

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self._last_step_end = now
        if self._t0 is None:  # the first step includes start-up costs: measure from its end
            self._t0 = self._window_t = now
            self._step0, self._window_tokens = state.global_step, state.num_input_tokens_seen
            return
        done = state.global_step - self._step0
        if done == self.eta_after and state.is_world_process_zero:
            per_step = (now - self._t0) / done
            remaining = (state.max_steps - state.global_step) * per_step
            print(f"[hfmicro] {per_step:.2f} s/step: about {remaining / 60:.1f} min for the remaining "
                  f"{state.max_steps - state.global_step:,} steps", flush=True)

    def _pause(self):
        """Called when an evaluation or a save ends: the time since the last step (or the previous pause) is
        left out of the window."""
        if self._last_step_end is not None and self._window_t is not None:
            now = time.perf_counter()
            self._paused += now - self._last_step_end
            self._last_step_end = now

    def on_evaluate(self, args, state, control, **kwargs):
        self._pause()

    def on_save(self, args, state, control, **kwargs):
        self._pause()

    def window_metrics(self, tokens_seen: int) -> dict:
        """tokens/s (and MFU) since the previous call: `PretrainingTrainer.log` adds them to each training
        log before Trainer hands it to the integrations (TensorBoard, trackio, ...) and the history."""
        if self._window_t is None:
            return {}
        now = time.perf_counter()
        tokens, metrics = tokens_seen - self._window_tokens, {}
        if tokens > 0:
            tokens_per_s = tokens / (now - self._window_t - self._paused)
            metrics["tokens_per_second"] = round(tokens_per_s, 1)
            if self.peak:
                metrics["mfu"] = round(tokens_per_s * self.flops_per_token / self.peak, 4)
        self._window_t, self._window_tokens, self._paused = now, tokens_seen, 0.0
        return metrics


class HistoryCallback(TrainerCallback):
    """`output_dir/training_history.json`: the numbers of Trainer's own `state.log_history` (rewritten
    atomically at each log; a resumed run's state holds the curve up to its checkpoint), and
    `training_curves.png` at the end."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, "training_history.json")

    @staticmethod
    def records(log_history: list[dict]) -> list[dict]:
        records = []
        for entry in log_history:
            record = {k: v for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")}
            if record:  # not a demo's text alone
                records.append({"step": entry["step"], "epoch": round(entry.get("epoch") or 0.0, 4), **record})
        return records

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_json_atomic(self.path, self.records(state.log_history))

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.log_history:
            plot_history(self.records(state.log_history), os.path.join(os.path.dirname(self.path), "training_curves.png"))


def plot_history(records: list[dict], path: str) -> bool:
    """Loss, accuracy and learning rate against step. Returns False where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    def series(key):
        points = [(r["step"], r[key]) for r in records if key in r and not math.isnan(r[key])]
        return [p[0] for p in points], [p[1] for p in points]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        steps, values = series(key)
        if steps:
            axes[0].plot(steps, values, label=label, marker="o" if key == "eval_loss" else None)
    axes[0].set(title="loss", xlabel="step")
    axes[0].legend()
    steps, values = series("eval_accuracy")
    axes[1].plot(steps, values, marker="o")
    axes[1].set(title="eval accuracy (masked / next token)", xlabel="step")
    steps, values = series("learning_rate")
    axes[2].plot(steps, values)
    axes[2].set(title="learning rate", xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


class DemoCallback(TrainerCallback):
    """Every `every` steps (or at each evaluation when 0): print what `demo(model)` returns (fill-mask
    guesses or generated text) and keep it in the log history."""

    def __init__(self, demo, every: int = 0):
        self.demo = demo
        self.every = every
        self._shown_at = None

    def _run(self, state, model):
        if not state.is_world_process_zero or model is None or state.global_step == self._shown_at:
            return  # (the final evaluation repeats the last step's)
        self._shown_at = state.global_step
        was_training = model.training
        model.eval()
        text = self.demo(model)
        if was_training:
            model.train()
        print(f"[hfmicro] step {state.global_step} demo:\n{text}", flush=True)
        state.log_history.append({"step": state.global_step, "demo": text})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._run(state, model)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not self.every:
            self._run(state, model)


PREEMPTION_EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + the signal, as a shell reports it


class PreemptionCallback(TrainerCallback):
    """SIGTERM or SIGINT (on any rank) during training: finish the current optimizer step, then every
    rank saves a complete checkpoint at the same step and training stops. A second SIGINT stops at once.

    The ranks agree on the step with a one-element all-reduce after each step, so a signal that reaches
    one rank (Kubernetes signals only the container's first process) stops them all together."""

    def __init__(self):
        self.received: int | None = None
        self.stopped_at: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            if signum == signal.SIGINT:  # Ctrl-C twice: do not wait for the checkpoint
                signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
                raise KeyboardInterrupt
            return  # a repeated SIGTERM (launchers and schedulers resend it): already stopping
        self.received = signum
        print(f"[hfmicro] {signal.Signals(signum).name} received: finishing this step, then saving a checkpoint",
              flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        for signum in PREEMPTION_EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _requested(self, args) -> bool:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.received is not None
        flag = torch.tensor([self.received or 0], device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self.received is None:
            self.received = int(flag.item())
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Give SIGTERM / SIGINT back their previous handlers (also when training raised)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @property
    def exit_code(self) -> int:
        return PREEMPTION_EXIT_CODES[self.received]
