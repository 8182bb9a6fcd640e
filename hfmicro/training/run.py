"""The pre-training job behind recipes/pretrain_mlm.py and recipes/pretrain_clm.py, in the order it runs:

options (arguments.py) -> the process's own set-up (launch.py) -> lock output_dir (checkpoints.py) ->
tokenizer, model, packed data, Trainer and callbacks (build.py) -> resume, start, or see that the run is
finished -> train (trainer.py: stopping cleanly on SIGTERM / SIGINT or a non-finite step) -> the final
model, tokenizer, history, curves, model card, written then published, and the demo (finish.py).

Exit codes: 0 done (or already done); 2 bad option, data or tokenizer, or output_dir in use; 3 stopped
on a non-finite loss or gradient norm; 143 / 130 stopped by SIGTERM / SIGINT after saving a checkpoint
(relaunch the same command to continue).
"""

import os
import sys
import time

from ..data import DataError
from ..errors import print_error
from ..objectives import OBJECTIVES
from .arguments import check_launch, read_options, recipe_arguments
from .build import build_trainer
from .callbacks import PreemptionCallback
from .checkpoints import RunLock, RunLockedError, final_step
from .finish import final_save, finished_at
from .hardware import detect_hardware
from .launch import follow_the_launcher, restore_cpu_threads, start_process_group
from .trainer import NonFiniteError

EXIT_NONFINITE = 3


def main(objective: str, argv: list[str] | None = None) -> int:
    """The recipe scripts' entry point: the objective's default recipe is used when no --config is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and "-h" not in argv and "--help" not in argv:
        argv = ["--config", os.path.relpath(OBJECTIVES[objective].recipe), *argv]
    return pretrain(objective, argv)


def pretrain(objective: str, argv: list[str] | None = None) -> int:
    """Run the recipe; returns the process exit code (see the module docstring). Option, data and
    tokenizer errors are reported in one line before any training starts."""
    spec = OBJECTIVES[objective]
    restore_cpu_threads()
    follow_the_launcher()
    try:
        options = read_options(argv, defaults={"preset": spec.default_preset,
                                               "output_dir": f"outputs/{spec.default_preset}"})
        hardware = detect_hardware(options.use_cpu)
        start_process_group(hardware, options.ddp_timeout)
        model_args, data_args, args = recipe_arguments(options, hardware)
        check_launch(data_args, args)
    except ValueError as err:
        return print_error(err)
    lock = RunLock(args.output_dir)
    try:
        if args.process_index == 0:
            warning = lock.acquire()
            if warning:
                print(f"[hfmicro] warning: {warning}", flush=True)
        trainer, tokenizer, plan = build_trainer(spec, model_args, data_args, args, hardware, argv)
    except (ValueError, DataError, RunLockedError) as err:
        lock.release()
        return print_error(err)
    try:
        return _train_and_finish(trainer, tokenizer, plan)
    except NonFiniteError as err:
        if args.process_index == 0:
            print_error(err)
        return EXIT_NONFINITE
    finally:
        lock.release()


def _train_and_finish(trainer, tokenizer, plan) -> int:
    args = trainer.args
    finished = finished_at(plan, args.output_dir)
    if finished is not None and final_step(args.output_dir) == finished:
        if args.should_log:
            print(f"[hfmicro] {args.output_dir} already finished at step {finished}: nothing to do (raise --max_steps "
                  "to train on, or --force_fresh to start over)", flush=True)
        return 0
    start = time.time()
    if finished is not None:
        if args.should_log:
            print(f"[hfmicro] training ended at step {finished}; completing the final save", flush=True)
        trainer.restore_finished(plan.resume)
    else:
        if args.should_log:
            print(plan.banner(trainer), flush=True)
        if trainer.is_world_process_zero():
            plan.write_settings(args)
        preemption = next(c for c in trainer.callback_handler.callbacks if isinstance(c, PreemptionCallback))
        try:
            trainer.train(resume_from_checkpoint=plan.resume)
        finally:
            preemption.restore()
            _close_progress_bars(trainer)  # after an error too, so the error is the last line printed
        if preemption.received is not None:
            if args.should_log:
                print(f"[hfmicro] stopped at step {preemption.stopped_at}: checkpoint-{preemption.stopped_at} saved; "
                      "relaunch the same command to continue", flush=True)
            return preemption.exit_code
    print(f"[hfmicro] process {args.process_index}/{args.world_size} finished at step {trainer.state.global_step}",
          flush=True)
    final_save(trainer, tokenizer, plan, time.time() - start)
    return 0


def _close_progress_bars(trainer) -> None:
    from transformers.trainer_callback import ProgressCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
            callback.training_bar.close()
            callback.training_bar = None
