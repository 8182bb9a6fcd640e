"""`hfmicro evaluate MODEL --dataset X`: held-out loss, perplexity and top-1 accuracy of any masked or
causal LM, a local folder or a Hub id, ours or stock.

Every model is scored the way the recipes score theirs (hfmicro/metrics: the same `Trainer.evaluate`
path and `token_accuracy` module) on the same windows: the corpus split packed into `--max_seq_length`
blocks by the data pipeline. For MLM the masks are fixed (static masking seeded by `--masking_seed`, at
`--mlm_probability`, 15 % by default), so two models that share a tokenizer are scored on exactly the
same masked tokens whatever masking rate they were trained with.
"""

import tempfile

from .data.report import DataError
from .errors import first_line
from .objectives import OBJECTIVES, Objective, objective_of_architectures
from .verbs import add_verb, answer


def _objective_of(config, objective: str | None) -> Objective:
    if objective:
        return OBJECTIVES[objective]
    found = objective_of_architectures(config.architectures)
    if found is None:
        raise ValueError(f"cannot tell the objective of {config.name_or_path} (architectures: "
                         f"{config.architectures}); pass --objective ({' or '.join(OBJECTIVES)})")
    return found


def _load(model: str, objective: str | None):
    """(model, tokenizer, Objective); a missing or unsuitable model is a ValueError in one line."""
    import transformers

    from .inference import check_model_source
    from .training.build import load_tokenizer

    where = check_model_source(model)
    try:
        config = transformers.AutoConfig.from_pretrained(model)
        spec = _objective_of(config, objective)
        lm = getattr(transformers, spec.auto_class).from_pretrained(model).eval()
    except (OSError, KeyError) as err:
        raise ValueError(f"cannot load {model!r} ({where}) as a language model: {first_line(err)}") from None
    return lm, load_tokenizer(model, spec), spec  # with the special token the objective needs


def _max_positions(config) -> int | None:
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def evaluate_model(model: str, *, dataset: str = "builtin", split: str = "validation", objective: str | None = None,
                   max_seq_length: int | None = None, mlm_probability: float = 0.15, masking_seed: int = 42,
                   batch_size: int = 32, max_blocks: int | None = None, **source) -> dict:
    """Loss, perplexity and accuracy of `model` on a packed split of `dataset` (`source`: the other
    corpus options of DataArguments: dataset_config, text_column, txt_mode, validation_split_percentage)."""
    import datasets
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from .data import DataArguments, lm_data_collator, load_lm_datasets
    from .data.lm_datasets import SPLITS
    from .metrics import lm_metrics, perplexity

    datasets.disable_progress_bars()
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    lm, tokenizer, spec = _load(model, objective)
    limit = _max_positions(lm.config)
    length = max_seq_length or min(128, limit or 128)
    if limit and length > limit:
        raise ValueError(f"max_seq_length={length} is longer than the model's {limit} positions")
    data_args = DataArguments(dataset=dataset, max_seq_length=length, static_masking=spec.masked,
                              mlm_probability=mlm_probability, masking_seed=masking_seed, **source)
    blocks = load_lm_datasets(data_args, tokenizer, spec.name)[split]
    if max_blocks:
        blocks = blocks.select(range(min(max_blocks, len(blocks))))
    if not len(blocks):
        raise DataError(f"{dataset}: the {split} split has no block of {length} tokens")
    compute_metrics, preprocess = lm_metrics(spec.name)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none",
                                 use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
        trainer = Trainer(model=lm, args=args, eval_dataset=blocks, processing_class=tokenizer,
                          data_collator=lm_data_collator(data_args, tokenizer, spec.name),
                          compute_metrics=compute_metrics, preprocess_logits_for_metrics=preprocess)
        trainer.remove_callback(PrinterCallback)  # the result is printed once, below
        # each batch's loss as the model computes it (its mean over scored tokens). With loss kwargs, Trainer
        # 5.23 divides stock GPT-2's summed loss by a count that includes position 0 (its loss_type is not
        # recognised as causal): the loss of a 32-token window came out 31/32 of the true value.
        trainer.model_accepts_loss_kwargs = False
        metrics = trainer.evaluate()
    if spec.masked:
        scored = sum(sum(label != -100 for label in row) for row in blocks["labels"])
    else:  # every token but the one each row's last position would predict
        scored = sum(len(row) - spec.next_token for row in blocks["input_ids"])
    return {
        "model": model, "objective": spec.name, "dataset": dataset, "split": split, "blocks": len(blocks),
        "max_seq_length": length, "scored_tokens": int(scored),
        **({"mlm_probability": mlm_probability, "masking_seed": masking_seed} if spec.masked else {}),
        "loss": metrics["eval_loss"], "perplexity": perplexity(metrics["eval_loss"]), "accuracy": metrics["eval_accuracy"],
    }


def _evaluate_command(args) -> int:
    from .data.arguments import SOURCE_OPTIONS

    def describe(result) -> str:
        masks = (f", fixed masks at {result['mlm_probability']:.0%} (seed {result['masking_seed']})"
                 if "masking_seed" in result else "")
        return (f"{result['model']} ({result['objective']}) on {result['dataset']} {result['split']}: "
                f"{result['blocks']:,} blocks of {result['max_seq_length']}, {result['scored_tokens']:,} tokens "
                f"scored{masks}\nloss        {result['loss']:.4f}\nperplexity  {result['perplexity']:.2f}\n"
                f"accuracy    {result['accuracy']:.2%}")

    return answer(args, lambda: evaluate_model(
        args.model, split=args.split, objective=args.objective, max_seq_length=args.max_seq_length,
        mlm_probability=args.mlm_probability, masking_seed=args.masking_seed, batch_size=args.batch_size,
        max_blocks=args.max_blocks, **{name: getattr(args, name) for name in SOURCE_OPTIONS}), describe)


def register(subparsers) -> None:
    from .data.arguments import SOURCE_OPTIONS, DataArguments, add_dataclass_arguments

    parser = add_verb(subparsers, "evaluate", _evaluate_command, "held-out loss, perplexity and accuracy of any masked "
                      "or causal LM", "Held-out loss, perplexity and top-1 accuracy of any masked or causal LM (a "
                      "local folder or a Hub id, ours or stock) on a packed split of a corpus; MLM on fixed masks, so "
                      "models trained with different masking rates are compared fairly.")
    parser.add_argument("model", help="a model folder (e.g. outputs/microbert-cpu) or a Hub id")
    add_dataclass_arguments(parser, DataArguments, only=(*SOURCE_OPTIONS, "mlm_probability", "masking_seed"))
    parser.add_argument("--split", default="validation", help="train or validation")
    parser.add_argument("--objective", choices=list(OBJECTIVES), default=None,
                        help="default: from the model's architecture")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="tokens per window; default: 128 or the model's positions if fewer")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_blocks", type=int, default=None, help="score at most this many windows")
