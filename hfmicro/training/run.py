"""The pre-training job behind recipes/pretrain_mlm.py and recipes/pretrain_clm.py.

parse options -> tokenizer -> model from a preset -> packed, cached data -> Trainer (+ callbacks)
-> resume or start -> train -> final model, tokenizer, history, curves, model card -> demo.
"""

import json
import math
import os
import sys
import time

import torch
from transformers import Trainer

from ..data import DataError, lm_data_collator, load_lm_datasets
from ..presets import PRESETS, build_model, preset_config
from .arguments import SHIPPED_TOKENIZERS, parse_recipe
from .callbacks import HistoryCallback, ProbeCallback, ThroughputCallback, flops_per_token
from .hardware import auto_batch_size, detect_hardware

DEFAULT_PRESET = {"mlm": "microbert-toy", "clm": "microgpt-toy"}


def restore_cpu_threads() -> None:
    """accelerate launch sets OMP_NUM_THREADS=1 when it starts processes; on a CPU machine that halves
    the speed of a single process. Give each local process its share of the cores instead."""
    if torch.cuda.is_available():
        return
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` whose trainer_state.json (written last by Trainer) is readable and at
    step N: a checkpoint cut short by a kill is skipped, never resumed from."""
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit():
            steps.append(int(name.split("-", 1)[1]))
    for step in sorted(steps, reverse=True):
        path = os.path.join(output_dir, f"checkpoint-{step}")
        try:
            with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
                if json.load(f).get("global_step") == step and os.path.exists(os.path.join(path, "model.safetensors")):
                    return path
        except (OSError, ValueError):
            continue
    return None


def accuracy_metrics(objective: str):
    """compute_metrics + preprocess_logits_for_metrics that never hold full logits: each eval batch is
    reduced to its argmax predictions at once, laid out like the labels (-100 where not scored)."""

    def preprocess_logits_for_metrics(logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        if logits.dim() == 2:  # sparse MLM head: (num_scored, V), in the order of labels != -100
            predictions = torch.full_like(labels, -100)
            predictions[labels != -100] = logits.argmax(-1)
            return predictions
        return logits.argmax(-1)

    def compute_metrics(eval_pred):
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        if objective == "clm":  # position t predicts token t + 1
            predictions, labels = predictions[:, :-1], labels[:, 1:]
        scored = labels != -100
        return {"accuracy": float((predictions[scored] == labels[scored]).mean()) if scored.any() else 0.0}

    return compute_metrics, preprocess_logits_for_metrics


class PretrainingTrainer(Trainer):
    def create_model_card(self, *args, **kwargs):
        # push_to_hub would replace our card (real numbers, usage) with Trainer's generic one
        if not os.path.exists(os.path.join(self.args.output_dir, "README.md")):
            super().create_model_card(*args, **kwargs)


def _load_tokenizer(path: str, objective: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"tokenizer: cannot load {path!r} ({reason}); give a folder made by "
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
    if overrides["max_position_embeddings"] < data_args.max_seq_length:
        raise ValueError(f"max_position_embeddings={overrides['max_position_embeddings']} is shorter than "
                         f"max_seq_length={data_args.max_seq_length}")
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if objective == "clm":
        ids |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return preset_config(model_args.preset, vocab_size=len(tokenizer), **ids, **overrides)


def pretrain(objective: str, argv: list[str] | None = None) -> int:
    """Run the recipe; returns the process exit code. Option, data and tokenizer errors are reported in
    one line before any training starts."""
    restore_cpu_threads()
    try:
        setup = _setup(objective, argv)
    except (ValueError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _train(*setup)


def _setup(objective: str, argv):
    from transformers import EarlyStoppingCallback, set_seed

    model_args, data_args, args = parse_recipe(
        argv, defaults={"preset": DEFAULT_PRESET[objective], "output_dir": f"outputs/{DEFAULT_PRESET[objective]}"}
    )
    if args.hub_token:
        raise ValueError("hub_token: do not pass the Hub token as an option (it would be saved with the run); "
                         "use `hf auth login` or the HF_TOKEN environment variable")
    if data_args.streaming and args.max_steps <= 0:
        raise ValueError("max_steps: a streamed dataset has no length, so give --max_steps (e.g. --max_steps 20000)")
    if args.early_stopping_patience and not (args.load_best_model_at_end and args.metric_for_best_model):
        raise ValueError("early_stopping_patience needs load_best_model_at_end and metric_for_best_model")
    set_seed(args.seed)

    tokenizer = _load_tokenizer(model_args.tokenizer or SHIPPED_TOKENIZERS[objective], objective)
    config = _model_config(model_args, data_args, tokenizer, objective)
    model = build_model(config)
    hardware = detect_hardware(args.use_cpu)
    if args.auto_batch_size:
        args.per_device_train_batch_size = auto_batch_size(
            hardware, model.num_parameters(), config.hidden_size, config.num_hidden_layers,
            data_args.max_seq_length, config.vocab_size, "fp32" if not (args.bf16 or args.fp16) else "bf16")

    with args.main_process_first(desc="prepare the dataset"):
        splits = load_lm_datasets(data_args, tokenizer, objective)
    eval_dataset = splits["validation"]
    if data_args.streaming:
        eval_dataset = eval_dataset.take(args.max_eval_samples or 2000)
    elif len(eval_dataset) == 0:
        raise DataError(f"{data_args.dataset}: the validation split is empty; raise --validation_split_percentage")
    elif args.max_eval_samples and len(eval_dataset) > args.max_eval_samples:
        eval_dataset = eval_dataset.select(range(args.max_eval_samples))

    compute_metrics, preprocess = accuracy_metrics(objective)
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    peak = hardware.peak_flops(precision)
    tokens_per_step = (args.per_device_train_batch_size * data_args.max_seq_length * args.gradient_accumulation_steps
                       * args.world_size)
    callbacks = [
        ThroughputCallback(tokens_per_step, flops_per_token(config, data_args.max_seq_length),
                           peak * args.world_size if peak else None),
        HistoryCallback(args.output_dir),
    ]
    if objective == "mlm":
        from .probes import fill_mask_demo

        callbacks.append(ProbeCallback(lambda m: fill_mask_demo(m, tokenizer), args.probe_steps))
    else:
        from .probes import generation_demo

        callbacks.append(ProbeCallback(lambda m: generation_demo(m, tokenizer, max_new_tokens=20), args.probe_steps))
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
    )
    resume = None if args.force_fresh else latest_complete_checkpoint(args.output_dir)
    info = dict(objective=objective, model_args=model_args, data_args=data_args, hardware=hardware,
                precision=precision, tokens_per_step=tokens_per_step, resume=resume, argv=argv)
    return trainer, tokenizer, info


def _banner(trainer, info) -> None:
    from ..convert import count_parameters

    args = trainer.args
    counts = count_parameters(trainer.model)
    if info["data_args"].streaming:
        steps = args.max_steps
    else:
        batches = math.ceil(len(trainer.train_dataset) / (args.per_device_train_batch_size * args.world_size))
        per_epoch = max(batches // args.gradient_accumulation_steps, 1)
        steps = args.max_steps if args.max_steps > 0 else math.ceil(per_epoch * args.num_train_epochs)
    active = f", active {counts['active']:,}" if counts["active"] != counts["total"] else ""
    where = info["hardware"].name if info["hardware"].device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"[hfmicro] {info['model_args'].preset} ({info['objective']}) on {where}, world_size={args.world_size}, "
        f"{info['precision']}\n"
        f"[hfmicro] parameters: total {counts['total']:,}, trainable {counts['trainable']:,}{active}\n"
        f"[hfmicro] tokens per step {info['tokens_per_step']:,}, steps {steps:,}, total tokens "
        f"{info['tokens_per_step'] * steps:,}" + (f"\n[hfmicro] resuming from {info['resume']}" if info["resume"] else ""),
        flush=True,
    )


def _train(trainer, tokenizer, info) -> int:
    from .card import write_model_card

    args = trainer.args
    if args.should_log:
        _banner(trainer, info)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=info["resume"])
    print(f"[hfmicro] process {args.process_index}/{args.world_size} finished at step {result.global_step}", flush=True)
    metrics = trainer.evaluate()
    if "eval_loss" in metrics:
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50))
    trainer.log_metrics("eval", metrics)
    if not trainer.is_world_process_zero():
        trainer.save_model(args.output_dir)  # a collective call under FSDP; writes on process 0 only
        return 0

    model = trainer.model
    report = {"train_seconds": round(time.time() - start, 1), "global_step": result.global_step,
              "tokens_seen": result.global_step * info["tokens_per_step"], **metrics}
    if info["objective"] == "mlm":
        from .probes import fill_mask_demo

        demo = fill_mask_demo(model.eval(), tokenizer)
        report.update(_probe_scores(model, tokenizer, info["data_args"]))
        print(f"[hfmicro] fill-mask probe: top-1 {report['probe_top1']:.1%}, top-5 {report['probe_top5']:.1%} "
              f"(unigram baseline top-1 {report['unigram_top1']:.1%}, top-5 {report['unigram_top5']:.1%}; "
              f"{report['probe_size']} sentences)")
    else:
        from .probes import generation_demo

        demo = generation_demo(model.eval(), tokenizer)
    print(f"[hfmicro] {'fill-mask' if info['objective'] == 'mlm' else 'generation'} demo:\n{demo}", flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "eval_results.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    write_model_card(args.output_dir, model, tokenizer, info, report, demo)
    # final (or best) model + tokenizer as safetensors; with --push_to_hub this also uploads the folder,
    # card included (checkpoint-* folders are not uploaded)
    trainer.save_model(args.output_dir)
    return 0


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
