"""What a training process sets up about itself before anything else: its CPU threads, its launcher's
death, and (CPU ranks) the process group with the user's timeout."""

import datetime
import os
import sys

import torch

from .hardware import Hardware


def restore_cpu_threads() -> None:
    """accelerate launch sets OMP_NUM_THREADS=1 when it starts processes; on a CPU machine that halves
    the speed of a single process. Give each local process its share of the cores instead."""
    if torch.cuda.is_available():
        return
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


def follow_the_launcher() -> None:
    """accelerate's single-process launcher exits on SIGTERM without signalling or waiting for the
    training process. Ask Linux to send that process SIGTERM when its launcher dies, so it still saves a
    checkpoint and stops instead of training on alone. (torchrun forwards signals to its workers.)"""
    if "ACCELERATE_USE_CPU" not in os.environ or "LOCAL_RANK" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_process_group(hardware: Hardware, timeout_seconds: int) -> None:
    """CPU ranks (gloo): start the process group with the user's --ddp_timeout before the training arguments
    are built. transformers gives the timeout to the process group on GPUs only; on CPU it would start the
    group itself with torch's 30-minute default (accelerate reuses a group that exists)."""
    import torch.distributed as dist

    if hardware.device != "cpu" or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_seconds))
