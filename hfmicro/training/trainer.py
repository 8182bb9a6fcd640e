"""`PretrainingTrainer`: transformers' Trainer with what a long pre-training run needs, and nothing else.

Each override names the Trainer behaviour it changes; `tests/test_trainer.py` checks that every method
overridden here still exists in Trainer with the signature it had (a renamed private method would
otherwise be silently ignored) and tests the behaviour itself.
"""

import math
import os
from dataclasses import asdict

import torch
from transformers import Trainer, TrainerState

from ..atomic import write_json_atomic
from ..data import StreamTracker
from .callbacks import ThroughputCallback
from .checkpoints import STREAM_STATE, latest_complete_checkpoint


class NonFiniteError(RuntimeError):
    """A NaN/Inf loss or gradient norm, more often than --max_nonfinite_steps allows."""


class PretrainingTrainer(Trainer):
    """Trainer with a non-finite guard: a step whose gradient norm (or, under fp16 loss scaling, whose
    loss) is NaN/Inf never reaches the optimizer. It is skipped while `max_nonfinite_steps` allows,
    otherwise training stops with NonFiniteError naming the step and the last good checkpoint. A streamed
    run records its stream position in every checkpoint."""

    def __init__(self, *args, max_nonfinite_steps: int = 0, stream: StreamTracker | None = None,
                 blocks_per_step: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_steps = 0
        self._step_loss = 0.0
        self.stream, self.blocks_per_step = stream, blocks_per_step

    def get_decay_parameter_names(self, model) -> list[str]:
        # Trainer decays every parameter but biases and norms (by name and layer type), so 0-d mixing scalars
        # (value_lambda) were pulled toward 0; decay the weight matrices and embeddings only, as nanoGPT does
        return [name for name, p in model.named_parameters() if p.ndim >= 2]

    def _save_rng_state(self, output_dir: str) -> None:
        # Trainer._save_checkpoint calls this after the optimizer and before trainer_state.json (written last):
        # the stream position goes into every checkpoint that counts as complete
        super()._save_rng_state(output_dir)
        if self.stream is not None and self.args.should_save:
            position = self.stream.resume_state(self.state.global_step * self.blocks_per_step)
            if position is not None:
                write_json_atomic(os.path.join(output_dir, STREAM_STATE), asdict(position))

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Trainer returns each micro-batch's loss; the guard needs the optimizer step's
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss = self._step_loss + loss.detach()  # no device sync here: checked once per step
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        # Trainer's inner loop calls this after clipping and before optimizer.step(): the last moment a
        # non-finite step can be kept from the weights
        grad_norm = super()._get_grad_norm(model, grad_norm)
        if self.accelerator.scaler is not None:
            # fp16: the loss scaler skips overflowing steps itself; only a non-finite loss is divergence
            what, value = "loss", torch.as_tensor(self._step_loss, device=self.args.device, dtype=torch.float32)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(value)  # every rank takes the same decision
        else:
            what, value = "gradient norm", grad_norm  # already reduced over ranks
        self._step_loss = 0.0
        value = float(value)
        if not math.isfinite(value):
            self._skip_or_stop(what, value)
        return grad_norm

    def _skip_or_stop(self, what: str, value: float) -> None:
        step = self.state.global_step + 1
        self.nonfinite_steps += 1
        if self.nonfinite_steps > self.max_nonfinite_steps:
            last = latest_complete_checkpoint(self.args.output_dir) or "none saved yet"
            allowed = f" ({self.max_nonfinite_steps} skipped before)" if self.max_nonfinite_steps else ""
            raise NonFiniteError(
                f"non-finite {what} ({value}) at step {step}{allowed}: stopped before the optimizer used it; last "
                f"good checkpoint: {last}. Lower --learning_rate or raise --warmup_steps (or let up to N such steps "
                "be skipped with --max_nonfinite_steps N)"
            )
        if self.accelerator.scaler is None:
            self.optimizer.zero_grad(set_to_none=True)  # no gradients: optimizer.step() changes nothing
        if self.args.should_log:
            print(f"[hfmicro] step {step}: non-finite {what} ({value}), step skipped "
                  f"({self.nonfinite_steps} of at most {self.max_nonfinite_steps})", flush=True)

    def log(self, logs, *args, **kwargs):
        # Trainer hands `logs` to every integration (TensorBoard, trackio) and the history here: our metrics join
        # a training log before that (a callback's on_log comes after the integrations)
        if "loss" in logs:
            throughput = next((c for c in self.callback_handler.callbacks if isinstance(c, ThroughputCallback)), None)
            if throughput is not None:
                logs.update(throughput.window_metrics(self.state.num_input_tokens_seen))
            if self.nonfinite_steps:
                logs["nonfinite_steps_skipped"] = self.nonfinite_steps
        super().log(logs, *args, **kwargs)

    def create_model_card(self, *args, **kwargs):
        # push_to_hub writes Trainer's generic card; ours (the run's real numbers, usage) is already there
        if not os.path.exists(os.path.join(self.args.output_dir, "README.md")):
            super().create_model_card(*args, **kwargs)

    def save_full_model(self, output_dir: str) -> None:
        """save_model with full safetensors weights in every case: under FSDP's SHARDED_STATE_DICT,
        Trainer's save_model writes nothing (checkpoints keep their shards); gather them here instead."""
        plugin = self.accelerator.state.fsdp_plugin if self.is_fsdp_enabled else None
        if plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
            state_dict = self.accelerator.get_state_dict(self.model)  # collective; full tensors on process 0
            self._save(output_dir, state_dict=state_dict)
        else:
            self.save_model(output_dir, _internal_call=True)

    def restore_finished(self, checkpoint: str) -> None:
        """Load what training ended with (the best checkpoint with load_best_model_at_end), without a step:
        the state Trainer.train leaves behind, for a run whose training ended but whose final save did not."""
        self.state = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
        best = self.state.best_model_checkpoint
        use_best = self.args.load_best_model_at_end and best and os.path.isdir(best)
        self._load_from_checkpoint(best if use_best else checkpoint)

    def nonfinite_weights(self) -> list[str]:
        """Names of parameters holding NaN/Inf (this process's shards under FSDP), agreed over ranks."""
        bad = [name for name, p in self.model.named_parameters()
               if not torch.isfinite(p.to_local() if hasattr(p, "to_local") else p).all()]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([len(bad)], device=self.args.device)
            torch.distributed.all_reduce(flag)
            if flag.item() and not bad:
                bad = ["(on another process)"]
        return bad
