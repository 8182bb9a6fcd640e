"""What an output_dir holds between launches: complete checkpoints, the final artifacts, and the lock
that keeps one run writing there.

- A checkpoint is complete when Trainer wrote it to the end: `trainer_state.json` (written last, by
  process 0) at the folder's step, the weights (`model.safetensors`, or the `pytorch_model_fsdp_0/`
  shards of FSDP's SHARDED_STATE_DICT, whose `.metadata` is written last) and no
  `checkpoint-is-incomplete.txt` (Trainer's just-in-time checkpoint marker).
- The final artifacts are written into a staging folder and then moved into output_dir one file at a
  time, `eval_results.json` last: a run killed during its final save leaves whole files, and
  `eval_results.json` with the run's last step is the proof the final save finished.
- The lock (`.hfmicro-run.lock`: pid, host, start time, command) is taken by process 0 before anything
  is read; a live holder refuses a second launch, a dead one (same host) is taken over.
"""

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass

from ..atomic import move_files_into, write_json_atomic

LOCK_FILE = ".hfmicro-run.lock"
STREAM_STATE = "stream_state.json"  # in each checkpoint of a streamed run: where its train stream stands
STAGING_DIR = ".final-staging"
FINAL_MARKER = "eval_results.json"


def checkpoint_step(path: str) -> int | None:
    name = os.path.basename(os.path.normpath(path))
    if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit():
        return int(name.split("-", 1)[1])
    return None


def is_complete_checkpoint(path: str) -> bool:
    step = checkpoint_step(path)
    if step is None or os.path.exists(os.path.join(path, "checkpoint-is-incomplete.txt")):
        return False
    try:
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
            if json.load(f).get("global_step") != step:
                return False
    except (OSError, ValueError):
        return False
    return os.path.exists(os.path.join(path, "model.safetensors")) or os.path.exists(
        os.path.join(path, "pytorch_model_fsdp_0", ".metadata")
    )


def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest complete `checkpoint-N` in output_dir; one cut short by a kill is skipped."""
    if not os.path.isdir(output_dir):
        return None
    paths = [os.path.join(output_dir, n) for n in os.listdir(output_dir) if checkpoint_step(n) is not None]
    for path in sorted(paths, key=checkpoint_step, reverse=True):
        if is_complete_checkpoint(path):
            return path
    return None


def trainer_state(checkpoint: str) -> dict:
    with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)


def final_step(output_dir: str) -> int | None:
    """The step of the published final model, or None when no final save finished."""
    try:
        with open(os.path.join(output_dir, FINAL_MARKER), encoding="utf-8") as f:
            return json.load(f).get("global_step")
    except (OSError, ValueError):
        return None


def staging_dir(output_dir: str, reset: bool = False) -> str:
    """The folder the final artifacts are written into before `publish`; `reset` empties it (what a
    killed final save left there is discarded)."""
    path = os.path.join(output_dir, STAGING_DIR)
    if reset:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    return path


def publish(staging: str, output_dir: str) -> None:
    """Move every staged file into output_dir (each an atomic rename), the final marker last."""
    move_files_into(staging, output_dir, last=FINAL_MARKER)


@dataclass
class LockHolder:
    pid: int
    host: str
    started: float
    command: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host} since {when} ({self.command})"


class RunLockedError(RuntimeError):
    """Another live run writes into the same output_dir."""


def _process_start(pid: int) -> float | None:
    """When process `pid` started (None if there is no such process)."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _holder_is_alive(holder: LockHolder) -> bool:
    if holder.host != socket.gethostname():
        return True  # cannot be checked from here: assume it runs
    started = _process_start(holder.pid)
    # a reused pid belongs to a process that started after the lock was written
    return started is not None and started <= holder.started + 1.0


class RunLock:
    """`with RunLock(output_dir):` one writer per output_dir (taken by process 0 only)."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.held = False

    def acquire(self) -> str | None:
        """Take the lock; returns a warning when a stale lock was taken over. Raises RunLockedError."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        me = LockHolder(os.getpid(), socket.gethostname(), _process_start(os.getpid()) or time.time(),
                        " ".join(sys.argv))
        warning = None
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(self.path, encoding="utf-8") as f:
                    holder = LockHolder(**json.load(f))
            except (OSError, ValueError, TypeError):
                holder = None  # unreadable: a lock cut short while being written
            if holder is not None and _holder_is_alive(holder):
                raise RunLockedError(
                    f"output_dir {os.path.dirname(self.path)} is in use by {holder.describe()}; wait for that run, "
                    f"stop it, or choose another --output_dir (if it is gone, delete {self.path})"
                ) from None
            warning = (f"took over the lock of a run that is no longer running "
                       f"({holder.describe() if holder else 'unreadable lock file'})")
            write_json_atomic(self.path, asdict(me))
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(me), f)
        self.held = True
        return warning

    def release(self) -> None:
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False


# config fields that may differ between launches of one run (bookkeeping, token ids Trainer rewrites,
# regularisation a user may change on resume)
_RESUMABLE_DIFFERENCES = {"transformers_version", "_name_or_path", "architectures", "auto_map", "dtype",
                          "torch_dtype", "pad_token_id", "bos_token_id", "eos_token_id", "use_cache"}


def check_resumable(checkpoint: str, config, tokenizer) -> None:
    """Refuse (ValueError naming what differs) to resume a checkpoint of another model or tokenizer,
    before any data is read: it would otherwise fail deep inside load_state_dict or the optimizer."""
    from transformers import AutoTokenizer

    from ..data.cache import tokenizer_fingerprint

    advice = "resume with the options it was started with, start over with --force_fresh, or choose another --output_dir"
    with open(os.path.join(checkpoint, "config.json"), encoding="utf-8") as f:
        theirs = json.load(f)
    ours = json.loads(config.to_json_string(use_diff=False))
    if theirs.get("model_type") != ours["model_type"]:
        raise ValueError(f"output_dir: {checkpoint} holds a {theirs.get('model_type')} model, this recipe trains "
                         f"{ours['model_type']} (model_type); {advice}")
    try:
        theirs_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError):
        theirs_tokenizer = None  # a checkpoint saved without its tokenizer: nothing to compare
    if theirs_tokenizer is not None and tokenizer_fingerprint(theirs_tokenizer) != tokenizer_fingerprint(tokenizer):
        raise ValueError(f"tokenizer: {checkpoint} was trained with another tokenizer ({len(theirs_tokenizer):,} "
                         f"tokens there, {len(tokenizer):,} here); {advice}")
    differing = [k for k in sorted(ours) if k in theirs and ours[k] != theirs[k]
                 and k not in _RESUMABLE_DIFFERENCES and "dropout" not in k]
    if differing:
        details = ", ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differing[:3])
        raise ValueError(f"output_dir: {checkpoint} holds another model ({details}); {advice}")
