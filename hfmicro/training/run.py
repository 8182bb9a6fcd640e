"""The pre-training job behind recipes/pretrain_mlm.py and recipes/pretrain_clm.py.

parse options -> lock output_dir -> tokenizer -> model from a preset -> packed, cached data -> Trainer
(+ callbacks) -> resume, start, or see that the run is finished -> train (stopping cleanly on SIGTERM /
SIGINT or a non-finite step) -> final model, tokenizer, history, curves, model card, written then
published -> demo.

Exit codes: 0 done (or already done); 2 bad option, data or tokenizer, or output_dir in use; 3 stopped
on a non-finite loss or gradient norm; 143 / 130 stopped by SIGTERM / SIGINT after saving a checkpoint
(relaunch the same command to continue).
"""

import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import Trainer

from ..atomic import write_json_atomic
from ..data.report import first_line, print_error
from ..data import (
    DataArguments, DataError, DataSummary, StreamState, StreamTracker, lm_data_collator, load_lm_datasets,
    wait_for_prepared,
)
from ..metrics import lm_metrics, perplexity
from ..presets import PRESETS, build_model, preset_config
from .arguments import SHIPPED_TOKENIZERS, ModelArguments, parse_recipe
from ..models import flops_per_token
from .callbacks import DemoCallback, HistoryCallback, PreemptionCallback, ThroughputCallback
from .checkpoints import (
    RunLock, RunLockedError, check_resumable, final_step, latest_complete_checkpoint, publish, staging_dir,
    trainer_state,
)
from .hardware import Hardware, auto_batch_size, detect_hardware

EXIT_NONFINITE = 3
STREAM_STATE = "stream_state.json"  # in each checkpoint of a streamed run: where its train stream stands

DEFAULT_PRESET = {"mlm": "microbert-toy", "clm": "microgpt-toy"}


def restore_cpu_threads() -> None:
    """accelerate launch sets OMP_NUM_THREADS=1 when it starts processes; on a CPU machine that halves
    the speed of a single process. Give each local process its share of the cores instead."""
    if torch.cuda.is_available():
        return
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


class NonFiniteError(RuntimeError):
    """A NaN/Inf loss or gradient norm, more often than --max_nonfinite_steps allows."""


class PretrainingTrainer(Trainer):
    """Trainer with a non-finite guard: a step whose gradient norm (or, under fp16 loss scaling, whose
    loss) is NaN/Inf never reaches the optimizer. It is skipped while `max_nonfinite_steps` allows,
    otherwise training stops with NonFiniteError naming the step and the last good checkpoint."""

    def __init__(self, *args, max_nonfinite_steps: int = 0, stream: StreamTracker | None = None,
                 blocks_per_step: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_steps = 0
        self._step_loss = 0.0
        self.stream, self.blocks_per_step = stream, blocks_per_step

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        # written before trainer_state.json, so a complete checkpoint always has it
        if self.stream is not None and self.args.should_save:
            position = self.stream.resume_state(self.state.global_step * self.blocks_per_step)
            if position is not None:
                write_json_atomic(os.path.join(output_dir, STREAM_STATE), asdict(position))

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss = self._step_loss + loss.detach()  # no device sync here: checked once per step
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
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

    def save_full_model(self, output_dir: str) -> None:
        """save_model with full safetensors weights in every case: under FSDP's SHARDED_STATE_DICT,
        Trainer's save_model writes nothing (checkpoints keep their shards); gather them here instead."""
        plugin = self.accelerator.state.fsdp_plugin if self.is_fsdp_enabled else None
        if plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
            state_dict = self.accelerator.get_state_dict(self.model)  # collective; full tensors on process 0
            self._save(output_dir, state_dict=state_dict)
        else:
            self.save_model(output_dir, _internal_call=True)

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

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:  # a training log: our metrics join it before the integrations receive it
            throughput = next((c for c in self.callback_handler.callbacks if isinstance(c, ThroughputCallback)), None)
            if throughput is not None:
                logs.update(throughput.window_metrics(self.state.num_input_tokens_seen))
            if self.nonfinite_steps:
                logs["nonfinite_steps_skipped"] = self.nonfinite_steps
        super().log(logs, *args, **kwargs)

    def create_model_card(self, *args, **kwargs):
        # push_to_hub would replace our card (real numbers, usage) with Trainer's generic one
        if not os.path.exists(os.path.join(self.args.output_dir, "README.md")):
            super().create_model_card(*args, **kwargs)


@dataclass
class RunPlan:
    """What a run knows before its first step: for the banner, the final report and the model card."""

    objective: str
    model_args: ModelArguments
    data_args: DataArguments
    hardware: Hardware
    precision: str
    tokens_per_step: int
    total_steps: int
    resume: str | None  # the checkpoint this launch continues from
    argv: list[str] | None
    data_summary: DataSummary  # what was read: documents, tokens, blocks, skipped rows
    demos: list[str]  # the fill-mask sentences or generation prompts of the demos


def _load_tokenizer(path: str, objective: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise ValueError(f"tokenizer: cannot load {path!r} ({first_line(err)}); give a folder made by "
                         "tokenizers/train_bpe.py or a Hub tokenizer id") from None
    if objective == "mlm" and tokenizer.mask_token is None:
        raise ValueError(f"tokenizer: {path} has no mask token; MLM needs one (train it with --model_type bert)")
    if objective == "clm" and tokenizer.eos_token is None:
        raise ValueError(f"tokenizer: {path} has no end-of-text token; train it with --model_type gpt")
    return tokenizer


def _model_config(model_args, data_args, tokenizer, objective: str):
    family = PRESETS[model_args.preset].family
    if (family == "microbert") != (objective == "mlm"):
        raise ValueError(f"preset: {model_args.preset} is a {family} model; this recipe trains "
                         f"{'microbert' if objective == 'mlm' else 'microgpt'} presets")
    overrides = {"max_position_embeddings": data_args.max_seq_length} | model_args.config_overrides()
    from ..models import MicroBertConfig, MicroGPTConfig

    fields = (MicroBertConfig if family == "microbert" else MicroGPTConfig).__dataclass_fields__
    other = [name for name in overrides if name not in fields]
    if other:
        raise ValueError(f"{other[0]}: {family} has no such option (it is for "
                         f"{'microgpt' if family == 'microbert' else 'microbert'} presets)")
    if overrides["max_position_embeddings"] < data_args.max_seq_length:
        raise ValueError(f"max_position_embeddings={overrides['max_position_embeddings']} is shorter than "
                         f"max_seq_length={data_args.max_seq_length}")
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if objective == "clm":
        ids |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    try:
        return preset_config(model_args.preset, vocab_size=len(tokenizer), **ids, **overrides)
    except StrictDataclassError as err:  # the config's own type and value checks, each naming its field
        raise ValueError(str(err.__cause__ or err)) from None


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


def main(objective: str, argv: list[str] | None = None, default_recipe: str | None = None) -> int:
    """The recipe scripts' entry point: `default_recipe` is used when no --config is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if default_recipe and "--config" not in argv and "-h" not in argv and "--help" not in argv:
        argv = ["--config", os.path.relpath(default_recipe), *argv]
    return pretrain(objective, argv)


def pretrain(objective: str, argv: list[str] | None = None) -> int:
    """Run the recipe; returns the process exit code (see the module docstring). Option, data and
    tokenizer errors are reported in one line before any training starts."""
    restore_cpu_threads()
    follow_the_launcher()
    try:
        model_args, data_args, args = parse_recipe(
            argv, defaults={"preset": DEFAULT_PRESET[objective], "output_dir": f"outputs/{DEFAULT_PRESET[objective]}"}
        )
        _check_options(data_args, args)
    except ValueError as err:
        return print_error(err)
    lock = RunLock(args.output_dir)
    try:
        if args.process_index == 0:
            warning = lock.acquire()
            if warning:
                print(f"[hfmicro] warning: {warning}", flush=True)
        setup = _setup(objective, model_args, data_args, args, argv)
    except (ValueError, DataError, RunLockedError) as err:
        lock.release()
        return print_error(err)
    try:
        return _run(*setup)
    except NonFiniteError as err:
        if args.process_index == 0:
            print_error(err)
        return EXIT_NONFINITE
    finally:
        lock.release()


def _check_options(data_args, args) -> None:
    if args.hub_token:
        raise ValueError("hub_token: do not pass the Hub token as an option (it would be saved with the run); "
                         "use `hf auth login` or the HF_TOKEN environment variable")
    if data_args.streaming and args.max_steps <= 0:
        raise ValueError("max_steps: a streamed dataset has no length, so give --max_steps (e.g. --max_steps 20000)")
    if args.early_stopping_patience and not (args.load_best_model_at_end and args.metric_for_best_model):
        raise ValueError("early_stopping_patience needs load_best_model_at_end and metric_for_best_model")


def _setup(objective: str, model_args, data_args, args, argv):
    from transformers import EarlyStoppingCallback, set_seed

    set_seed(args.seed)
    tokenizer = _load_tokenizer(model_args.tokenizer or SHIPPED_TOKENIZERS[objective], objective)
    config = _model_config(model_args, data_args, tokenizer, objective)
    model = build_model(config)
    hardware = detect_hardware(args.use_cpu)
    if args.auto_batch_size and hardware.device != "cuda":
        print(f"[hfmicro] auto_batch_size does nothing without a GPU: keeping per_device_train_batch_size="
              f"{args.per_device_train_batch_size}", flush=True)
    elif args.auto_batch_size:
        args.per_device_train_batch_size = auto_batch_size(
            hardware, model.num_parameters(), config.hidden_size, config.num_hidden_layers,
            data_args.max_seq_length, config.vocab_size, "fp32" if not (args.bf16 or args.fp16) else "bf16")

    resume = None if args.force_fresh else latest_complete_checkpoint(args.output_dir)
    if resume:
        check_resumable(resume, config, tokenizer)
    stream = _stream_tracker(resume, args) if data_args.streaming else None
    splits, data_summary = _load_splits(data_args, tokenizer, objective, args, stream)
    eval_dataset = splits["validation"]
    if data_args.streaming:
        eval_dataset = eval_dataset.take(args.max_eval_samples or 2000)
    elif len(eval_dataset) == 0:
        raise DataError(f"{data_args.dataset}: the validation split is empty; raise --validation_split_percentage")
    elif args.max_eval_samples and len(eval_dataset) > args.max_eval_samples:
        eval_dataset = eval_dataset.select(range(args.max_eval_samples))

    compute_metrics, preprocess = lm_metrics(objective)
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    peak = hardware.peak_flops(precision)
    tokens_per_step = (args.per_device_train_batch_size * data_args.max_seq_length * args.gradient_accumulation_steps
                       * args.world_size)
    callbacks = [
        ThroughputCallback(flops_per_token(config, data_args.max_seq_length), peak * args.world_size if peak else None),
        HistoryCallback(args.output_dir),
        PreemptionCallback(),
    ]
    demos = _demo_inputs(objective, tokenizer, data_args)
    if objective == "mlm":
        from .probes import fill_mask_demo

        callbacks.append(DemoCallback(lambda m: fill_mask_demo(m, tokenizer, demos), args.demo_steps))
    else:
        from .probes import generation_demo

        callbacks.append(DemoCallback(lambda m: generation_demo(m, tokenizer, demos, max_new_tokens=20),
                                      args.demo_steps))
    if args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience))

    trainer = PretrainingTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=eval_dataset,
        data_collator=lm_data_collator(data_args, tokenizer, objective),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess,
        callbacks=callbacks,
        max_nonfinite_steps=args.max_nonfinite_steps,
        stream=stream,
        blocks_per_step=args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
    )
    plan = RunPlan(objective=objective, model_args=model_args, data_args=data_args, hardware=hardware,
                   precision=precision, tokens_per_step=tokens_per_step, total_steps=_total_steps(trainer, data_args),
                   resume=resume, argv=argv, data_summary=data_summary, demos=demos)
    return trainer, tokenizer, plan


def _demo_inputs(objective: str, tokenizer, data_args) -> list[str]:
    """What the demos ask the model: sentences with a masked unit (MLM) or prompts (CLM) from the run's own
    validation text, so a model trained on court records is not asked about Python's documentation; the
    shipped ones for the builtin corpus (or when the validation text offers none)."""
    from ..data import iter_texts
    from .probes import DEMO_PROMPTS, DEMO_SENTENCES, demo_prompts, demo_sentences

    shipped = DEMO_SENTENCES if objective == "mlm" else DEMO_PROMPTS
    if data_args.dataset == "builtin":
        return shipped
    texts = iter_texts(data_args.dataset, "validation", max_bytes=1_000_000, dataset_config=data_args.dataset_config,
                       text_column=data_args.text_column, txt_mode=data_args.txt_mode,
                       validation_split_percentage=data_args.validation_split_percentage)
    try:
        found = demo_sentences(tokenizer, texts, 3) if objective == "mlm" else demo_prompts(texts, 2)
    except DataError:
        found = []
    return found or shipped


def _stream_tracker(resume: str | None, args) -> StreamTracker:
    """For a streamed run: start the train stream where the checkpoint left it (no batch is replayed:
    Trainer's own data skip is turned off), or at the beginning."""
    import json

    path = os.path.join(resume, STREAM_STATE) if resume else None
    if path is None or not os.path.exists(path):
        return StreamTracker()  # an older checkpoint: Trainer replays the stream up to it
    with open(path, encoding="utf-8") as f:
        start = StreamState(**json.load(f))
    args.ignore_data_skip = True
    if args.should_log:
        print(f"[hfmicro] resuming the stream at document {start.documents:,} of pass {start.passes + 1} "
              f"(block {start.blocks + start.skip_blocks:,}): the documents before it are read but not "
              "tokenised; no batch is replayed", flush=True)
    return StreamTracker(start)


def _load_splits(data_args, tokenizer, objective: str, args, stream: StreamTracker | None = None):
    """The local main process tokenises, packs and caches; the other local processes wait for the cache
    entry on the file system (not in a collective, which would time out on a corpus that takes longer
    than --ddp_timeout to prepare), then load it. `hfmicro data prepare` prepares ahead of a launch."""
    from dataclasses import replace

    if args.world_size > 1 and not data_args.streaming and args.local_process_index != 0:
        wait_for_prepared(data_args, tokenizer, objective)
        data_args = replace(data_args, overwrite_cache=False)
    summary = DataSummary()
    splits = load_lm_datasets(data_args, tokenizer, objective, summary=summary, stream=stream)
    if args.should_log:
        print(f"[hfmicro] {summary.line()}", flush=True)
    return splits, summary


def epoch_steps(blocks: int, args, world_size: int) -> int:
    """Optimizer steps of `args.num_train_epochs` over `blocks` training blocks, as Trainer counts them."""
    batches = math.ceil(blocks / (args.per_device_train_batch_size * world_size))
    per_epoch = max(batches // args.gradient_accumulation_steps, 1)
    return math.ceil(per_epoch * args.num_train_epochs)


def _total_steps(trainer, data_args) -> int:
    args = trainer.args
    if data_args.streaming or args.max_steps > 0:
        return args.max_steps
    return epoch_steps(len(trainer.train_dataset), args, args.world_size)


def _banner(trainer, plan: RunPlan) -> None:
    from ..models import count_parameters

    args = trainer.args
    counts = count_parameters(trainer.model)
    active = f", active {counts['active']:,}" if counts["active"] != counts["total"] else ""
    where = plan.hardware.name if plan.hardware.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"[hfmicro] {plan.model_args.preset} ({plan.objective}) on {where}, world_size={args.world_size}, "
        f"{plan.precision}\n"
        f"[hfmicro] parameters: total {counts['total']:,}, trainable {counts['trainable']:,}{active}\n"
        f"[hfmicro] tokens per step {plan.tokens_per_step:,}, steps {plan.total_steps:,}, total tokens "
        f"{plan.tokens_per_step * plan.total_steps:,}" + (f"\n[hfmicro] resuming from {plan.resume}" if plan.resume else ""),
        flush=True,
    )


def _finished_at(plan: RunPlan, output_dir: str) -> int | None:
    """The step at which this run's training already ended, or None when there is training left: the
    newest checkpoint reached the planned steps, or the final save after it finished (early stopping)
    and this launch plans no more steps than that run did."""
    if plan.resume is None:
        return None
    state = trainer_state(plan.resume)
    step = state["global_step"]
    if step >= plan.total_steps or (final_step(output_dir) == step and plan.total_steps <= state.get("max_steps", 0)):
        return step
    return None


def _restore_finished(trainer, checkpoint: str) -> None:
    """Load what training ended with (the best checkpoint with load_best_model_at_end), without a step."""
    from transformers import TrainerState

    trainer.state = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
    best = trainer.state.best_model_checkpoint
    use_best = trainer.args.load_best_model_at_end and best and os.path.isdir(best)
    trainer._load_from_checkpoint(best if use_best else checkpoint)


def _run(trainer, tokenizer, plan: RunPlan) -> int:
    args = trainer.args
    finished = _finished_at(plan, args.output_dir)
    if finished is not None and final_step(args.output_dir) == finished:
        if args.should_log:
            print(f"[hfmicro] {args.output_dir} already finished at step {finished}: nothing to do (raise --max_steps "
                  "to train on, or --force_fresh to start over)", flush=True)
        return 0
    start = time.time()
    if finished is not None:
        if args.should_log:
            print(f"[hfmicro] training ended at step {finished}; completing the final save", flush=True)
        _restore_finished(trainer, plan.resume)
    else:
        if args.should_log:
            _banner(trainer, plan)
        if trainer.is_world_process_zero():
            _write_settings(args, plan)
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
    _final_save(trainer, tokenizer, plan, time.time() - start)
    return 0


def _write_settings(args, plan: RunPlan) -> None:
    """`run_settings.json` in the output folder: every option this launch trains with (what `hfmicro
    compare` tabulates), written before the first step so a run in progress can be compared too."""
    training = {k: v for k, v in args.to_dict().items()
                if (v is None or isinstance(v, (int, float, str, bool))) and "token" not in k}
    os.makedirs(args.output_dir, exist_ok=True)
    write_json_atomic(os.path.join(args.output_dir, "run_settings.json"), {
        "run": {"objective": plan.objective, "precision": plan.precision, "tokens_per_step": plan.tokens_per_step,
                "total_steps": plan.total_steps, "world_size": args.world_size},
        "model": asdict(plan.model_args), "data": asdict(plan.data_args), "training": training,
    })


def _close_progress_bars(trainer) -> None:
    from transformers.trainer_callback import ProgressCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
            callback.training_bar.close()
            callback.training_bar = None


def _final_save(trainer, tokenizer, plan: RunPlan, seconds: float) -> None:
    """Evaluate, then write the final model, tokenizer, card and results into a staging folder and
    publish them into output_dir (eval_results.json last). Push to the Hub when asked."""
    from .card import write_model_card

    args = trainer.args
    metrics = trainer.evaluate()
    if "eval_loss" in metrics:
        metrics["eval_perplexity"] = perplexity(metrics["eval_loss"])
    trainer.log_metrics("eval", metrics)
    model = trainer.model
    bad = trainer.nonfinite_weights()
    if bad:
        raise NonFiniteError(f"the final model has non-finite weights ({bad[0]}, {len(bad)} tensors): not saved")
    staging = staging_dir(args.output_dir, reset=trainer.is_world_process_zero())
    if args.world_size > 1:
        torch.distributed.barrier()  # the staging folder exists before any rank writes into it
    trainer.save_full_model(staging)  # a collective call under FSDP; writes on process 0 only
    if not trainer.is_world_process_zero():
        return

    report = {"train_seconds": round(seconds, 1), "global_step": trainer.state.global_step,
              "tokens_seen": trainer.state.num_input_tokens_seen,
              "nonfinite_steps_skipped": trainer.nonfinite_steps, **metrics}
    if plan.data_summary.splits:  # a prepared corpus (a stream is counted while it is read)
        summary = plan.data_summary
        report.update(data_documents=sum(s.documents for s in summary.splits.values()), data_bad_rows=summary.bad_rows,
                      data_empty_documents=summary.empty_documents, data_bad_row_reasons=summary.bad_row_reasons,
                      data_bad_row_examples=summary.bad_row_examples, data_skipped=summary.describe_skipped())
    if plan.objective == "mlm":
        from .probes import fill_mask_demo

        demo = fill_mask_demo(model.eval(), tokenizer, plan.demos)
        report.update(_probe_scores(model, tokenizer, plan.data_args))
        print(f"[hfmicro] fill-mask probe: top-1 {report['probe_top1']:.1%}, top-5 {report['probe_top5']:.1%} "
              f"(unigram baseline top-1 {report['unigram_top1']:.1%}, top-5 {report['unigram_top5']:.1%}; "
              f"{report['probe_size']} sentences)")
    else:
        from .probes import generation_demo

        demo = generation_demo(model.eval(), tokenizer, plan.demos)
    print(f"[hfmicro] {'fill-mask' if plan.objective == 'mlm' else 'generation'} demo:\n{demo}", flush=True)
    name = (args.push_to_hub and args.hub_model_id) or os.path.basename(os.path.abspath(args.output_dir))
    write_model_card(staging, name, model, tokenizer, plan, report, demo)
    write_json_atomic(os.path.join(staging, "eval_results.json"), report)
    publish(staging, args.output_dir)
    if args.push_to_hub:  # the published folder, card included (checkpoint-* folders are not uploaded)
        trainer.push_to_hub()


def _probe_scores(model, tokenizer, data_args) -> dict:
    from ..data import iter_texts
    from .probes import build_probe_set, score_probe, score_unigram

    kwargs = dict(dataset_config=data_args.dataset_config, text_column=data_args.text_column,
                  txt_mode=data_args.txt_mode, validation_split_percentage=data_args.validation_split_percentage)
    train_texts = iter_texts(data_args.dataset, "train", max_bytes=5_000_000, **kwargs)
    validation_texts = iter_texts(data_args.dataset, "validation", max_bytes=5_000_000, **kwargs)
    items, counts = build_probe_set(tokenizer, train_texts, validation_texts)
    ours = score_probe(model, tokenizer, items)
    unigram = score_unigram(items, counts, tokenizer.all_special_ids)
    return {"probe_size": len(items), "probe_top1": ours["top1"], "probe_top5": ours["top5"],
            "unigram_top1": unigram["top1"], "unigram_top5": unigram["top5"]}
