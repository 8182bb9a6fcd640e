"""Everything a run is built from, by named functions that `hfmicro estimate`, `hfmicro evaluate` and the
benchmarks use too: the tokenizer, the model config and model, the packed data, the steps, the demos,
and the Trainer with its callbacks (`build_trainer`). What a run knows before its first step is its
`RunPlan`."""

import json
import math
import os
from dataclasses import asdict, dataclass, replace

import torch
from huggingface_hub.errors import StrictDataclassError

from ..atomic import write_json_atomic
from ..data import (
    DataArguments, DataError, DataSummary, StreamState, StreamTracker, iter_texts, lm_data_collator, load_lm_datasets,
    wait_for_prepared,
)
from ..errors import first_line
from ..metrics import lm_metrics
from ..models import count_parameters, flops_per_token
from ..objectives import OBJECTIVES, Objective
from ..presets import PRESETS, build_model, preset_config
from .arguments import ModelArguments, PretrainingArguments
from .callbacks import DemoCallback, HistoryCallback, PreemptionCallback, ThroughputCallback
from .checkpoints import STREAM_STATE, check_resumable, latest_complete_checkpoint
from .hardware import Hardware
from .memory import fit_batch_size
from .probes import DEMOS
from .trainer import PretrainingTrainer


@dataclass
class RunPlan:
    """What a run knows before its first step: for the banner, the final report and the model card."""

    objective: Objective
    model_args: ModelArguments
    data_args: DataArguments
    hardware: Hardware
    precision: str
    tokens_per_step: int
    total_steps: int
    resume: str | None  # the checkpoint this launch continues from
    argv: list[str] | None
    data_summary: DataSummary  # what was read: documents, tokens, blocks, skipped rows
    demos: list[str]  # the inputs of the demos (fill-mask sentences, generation prompts)

    def banner(self, trainer) -> str:
        args = trainer.args
        counts = count_parameters(trainer.model)
        active = f", active {counts['active']:,}" if counts["active"] != counts["total"] else ""
        where = self.hardware.name if self.hardware.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        return (f"[hfmicro] {self.model_args.preset} ({self.objective.name}) on {where}, world_size={args.world_size}, "
                f"{self.precision}\n"
                f"[hfmicro] parameters: total {counts['total']:,}, trainable {counts['trainable']:,}{active}\n"
                f"[hfmicro] tokens per step {self.tokens_per_step:,}, steps {self.total_steps:,}, total tokens "
                f"{self.tokens_per_step * self.total_steps:,}" + (f"\n[hfmicro] resuming from {self.resume}"
                                                                  if self.resume else ""))

    def write_settings(self, args) -> None:
        """`run_settings.json` in the output folder: every option this launch trains with (what `hfmicro
        compare` tabulates), written before the first step so a run in progress can be compared too."""
        training = {k: v for k, v in args.to_dict().items()
                    if (v is None or isinstance(v, (int, float, str, bool))) and "token" not in k}
        os.makedirs(args.output_dir, exist_ok=True)
        write_json_atomic(os.path.join(args.output_dir, "run_settings.json"), {
            "run": {"objective": self.objective.name, "precision": self.precision,
                    "tokens_per_step": self.tokens_per_step, "total_steps": self.total_steps,
                    "world_size": args.world_size},
            "model": asdict(self.model_args), "data": asdict(self.data_args), "training": training,
        })


def load_tokenizer(path: str, objective: Objective):
    """The tokenizer of a folder or Hub id; ValueError in one line when it cannot be loaded or lacks the
    special token the objective needs."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise ValueError(f"tokenizer: cannot load {path!r} ({first_line(err)}); give a folder made by "
                         "tokenizers/train_bpe.py or a Hub tokenizer id") from None
    objective.check_tokenizer(tokenizer, path)
    return tokenizer


def model_config(model_args: ModelArguments, data_args: DataArguments, tokenizer, objective: Objective):
    """The preset's config with the recipe's overrides, the tokenizer's vocabulary and special tokens, and
    positions for the data's blocks. ValueError naming the field when something does not fit."""
    family = PRESETS[model_args.preset].family
    if family != objective.family:
        raise ValueError(f"preset: {model_args.preset} is a {family} model; this recipe trains {objective.family} "
                         f"presets ({objective.description})")
    overrides = {"max_position_embeddings": data_args.max_seq_length} | model_args.config_overrides()
    fields = objective.config_cls.__dataclass_fields__
    other = [name for name in overrides if name not in fields]
    if other:
        owners = [o.family for o in OBJECTIVES.values() if other[0] in o.config_cls.__dataclass_fields__]
        raise ValueError(f"{other[0]}: {family} has no such option (it is for {' and '.join(owners)} presets)")
    if overrides["max_position_embeddings"] < data_args.max_seq_length:
        raise ValueError(f"max_position_embeddings={overrides['max_position_embeddings']} is shorter than "
                         f"max_seq_length={data_args.max_seq_length}")
    ids = {name: getattr(tokenizer, name) for name in objective.token_ids}
    try:
        return preset_config(model_args.preset, vocab_size=len(tokenizer), **ids, **overrides)
    except StrictDataclassError as err:  # the config's own type and value checks, each naming its field
        raise ValueError(str(err.__cause__ or err)) from None


def epoch_steps(blocks: int, args, world_size: int) -> int:
    """Optimizer steps of `args.num_train_epochs` over `blocks` training blocks, as Trainer counts them."""
    batches = math.ceil(blocks / (args.per_device_train_batch_size * world_size))
    per_epoch = max(batches // args.gradient_accumulation_steps, 1)
    return math.ceil(per_epoch * args.num_train_epochs)


def precision_of(args) -> str:
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def choose_batch_size(hardware: Hardware, config, objective: Objective, data_args: DataArguments, args) -> int:
    """--auto_batch_size: the largest power-of-two batch whose memory, as `hfmicro estimate` counts it, fits
    the GPU (on CPU the batch is kept)."""
    if hardware.device != "cuda":
        print(f"[hfmicro] auto_batch_size does nothing without a GPU: keeping per_device_train_batch_size="
              f"{args.per_device_train_batch_size}", flush=True)
        return args.per_device_train_batch_size
    return fit_batch_size(hardware, config, objective, data_args.max_seq_length, data_args.mlm_probability,
                          precision_of(args), bool(args.gradient_checkpointing), args.world_size)


def demo_inputs(objective: Objective, tokenizer, data_args: DataArguments) -> list[str]:
    """What the demos ask the model: masked sentences or prompts from the run's own validation text, so a
    model trained on court records is not asked about Python's documentation; the shipped ones for the
    builtin corpus (or when the validation text offers none)."""
    demo = DEMOS[objective.task]
    if data_args.dataset == "builtin":
        return demo.shipped
    texts = iter_texts(data_args.dataset, "validation", max_bytes=1_000_000, dataset_config=data_args.dataset_config,
                       text_column=data_args.text_column, txt_mode=data_args.txt_mode,
                       validation_split_percentage=data_args.validation_split_percentage)
    try:
        found = demo.find(tokenizer, texts)
    except DataError:
        found = []
    return found or demo.shipped


def stream_tracker(resume: str | None, args) -> StreamTracker:
    """For a streamed run: start the train stream where the checkpoint left it (no batch is replayed:
    Trainer's own data skip is turned off), or at the beginning."""
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


def load_splits(data_args: DataArguments, tokenizer, objective: Objective, args, stream: StreamTracker | None = None):
    """The packed splits. The local main process tokenises, packs and caches; the other local processes wait
    for the cache entry on the file system (not in a collective, which would time out on a corpus that
    takes longer than --ddp_timeout to prepare), then load it. `hfmicro data prepare` prepares ahead."""
    if args.world_size > 1 and not data_args.streaming and args.local_process_index != 0:
        wait_for_prepared(data_args, tokenizer, objective.name)
        data_args = replace(data_args, overwrite_cache=False)
    summary = DataSummary()
    splits = load_lm_datasets(data_args, tokenizer, objective.name, summary=summary, stream=stream)
    if args.should_log:
        print(f"[hfmicro] {summary.line()}", flush=True)
    return splits, summary


def eval_split(splits, data_args: DataArguments, args):
    """The blocks evaluated: at most --max_eval_samples (a streamed validation split is endless)."""
    eval_dataset = splits["validation"]
    if data_args.streaming:
        return eval_dataset.take(args.max_eval_samples or 2000)
    if len(eval_dataset) == 0:
        raise DataError(f"{data_args.dataset}: the validation split is empty; raise --validation_split_percentage")
    if args.max_eval_samples and len(eval_dataset) > args.max_eval_samples:
        return eval_dataset.select(range(args.max_eval_samples))
    return eval_dataset


def build_trainer(objective: Objective, model_args: ModelArguments, data_args: DataArguments,
                  args: PretrainingArguments, hardware: Hardware, argv: list[str] | None = None):
    """(PretrainingTrainer, tokenizer, RunPlan) for a launch: set the seed, load the tokenizer, build the
    model, refuse a checkpoint of another model, read the data, and attach the callbacks."""
    from transformers import EarlyStoppingCallback, set_seed

    set_seed(args.seed)
    tokenizer = load_tokenizer(model_args.tokenizer or objective.tokenizer, objective)
    config = model_config(model_args, data_args, tokenizer, objective)
    model = build_model(config)
    if args.auto_batch_size:
        args.per_device_train_batch_size = choose_batch_size(hardware, config, objective, data_args, args)

    resume = None if args.force_fresh else latest_complete_checkpoint(args.output_dir)
    if resume:
        check_resumable(resume, config, tokenizer)
    stream = stream_tracker(resume, args) if data_args.streaming else None
    splits, data_summary = load_splits(data_args, tokenizer, objective, args, stream)
    eval_dataset = eval_split(splits, data_args, args)

    compute_metrics, preprocess = lm_metrics(objective.name)
    precision = precision_of(args)
    peak = hardware.peak_flops(precision)
    blocks_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    demo, inputs = DEMOS[objective.task], demo_inputs(objective, tokenizer, data_args)
    callbacks = [
        ThroughputCallback(flops_per_token(config, data_args.max_seq_length), peak * args.world_size if peak else None),
        HistoryCallback(args.output_dir),
        PreemptionCallback(),
        DemoCallback(lambda m: demo.show(m, tokenizer, inputs, **demo.training), args.demo_steps),
    ]
    if args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience))

    trainer = PretrainingTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=eval_dataset,
        data_collator=lm_data_collator(data_args, tokenizer, objective.name),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess,
        callbacks=callbacks,
        max_nonfinite_steps=args.max_nonfinite_steps,
        stream=stream,
        blocks_per_step=blocks_per_step,
    )
    total_steps = (args.max_steps if data_args.streaming or args.max_steps > 0
                   else epoch_steps(len(trainer.train_dataset), args, args.world_size))
    plan = RunPlan(objective=objective, model_args=model_args, data_args=data_args, hardware=hardware,
                   precision=precision, tokens_per_step=blocks_per_step * data_args.max_seq_length,
                   total_steps=total_steps, resume=resume, argv=argv, data_summary=data_summary, demos=inputs)
    return trainer, tokenizer, plan
