"""`hfmicro data stats`: what a corpus holds before any training: documents, size, duplicates, bad rows."""

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field

from .packing import TOKENIZE_BATCH, token_ids
from ..errors import print_error
from .report import DataError, ReadReport, exit_on_data_error
from .sources import iter_rows


# C0/C1 control characters other than tab, newline and carriage return: terminal colour codes and other
# debris of scraped text, which a tokenizer otherwise learns as tokens
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass
class CorpusStats:
    documents: int = 0  # usable (non-empty, well-formed) documents, duplicates included
    characters: int = 0
    tokens: int | None = None  # without separators or special tokens; None without a tokenizer
    tokens_per_character: float | None = None  # meaningful with or without spaces between words
    empty_documents: int = 0
    duplicate_documents: int = 0  # exact copies of an earlier document
    control_characters: int = 0
    documents_with_control_characters: int = 0
    bad_rows: int = 0
    bad_row_reasons: dict[str, int] = field(default_factory=dict)
    bad_row_examples: list[str] = field(default_factory=list)


def corpus_stats(
    dataset: str = "builtin",
    *,
    dataset_config: str | None = None,
    text_column: str = "text",
    txt_mode: str = "auto",
    tokenizer=None,
) -> CorpusStats:
    """Counts over the whole source (train and validation), streamed; duplicates found by content hash."""
    report, seen, stats, batch = ReadReport(), set(), CorpusStats(), []

    def count_tokens(texts: list[str]) -> int:
        return sum(map(len, token_ids(texts, tokenizer)))

    tokens = 0
    rows = iter_rows(dataset, "all", dataset_config=dataset_config, text_column=text_column, txt_mode=txt_mode)
    for row in rows:
        if row.text is None:
            report.add_bad_row(row.location, row.problem)
        elif not row.text.strip():
            report.empty_documents += 1
        else:
            report.documents += 1
            report.characters += len(row.text)
            digest = hashlib.blake2b(row.text.encode("utf-8"), digest_size=16).digest()
            stats.duplicate_documents += digest in seen
            seen.add(digest)
            if controls := len(_CONTROL.findall(row.text)):
                stats.control_characters += controls
                stats.documents_with_control_characters += 1
            if tokenizer is not None:
                batch.append(row.text)
                if len(batch) == TOKENIZE_BATCH:
                    tokens, batch = tokens + count_tokens(batch), []
    if tokenizer is not None:
        stats.tokens = tokens + (count_tokens(batch) if batch else 0)
        stats.tokens_per_character = round(stats.tokens / report.characters, 4) if report.characters else None
    stats.documents, stats.characters, stats.empty_documents = report.documents, report.characters, report.empty_documents
    stats.bad_rows, stats.bad_row_reasons, stats.bad_row_examples = (
        report.bad_rows, report.bad_row_reasons, report.bad_row_examples)
    return stats


@exit_on_data_error
def _stats_command(args) -> int:
    from .arguments import DataArguments

    try:
        DataArguments(dataset=args.dataset, dataset_config=args.dataset_config, text_column=args.text_column,
                      txt_mode=args.txt_mode)  # the recipes' checks
    except ValueError as err:
        return print_error(err)
    tokenizer = None
    if args.tokenizer:
        if not os.path.isdir(args.tokenizer):
            raise DataError(f"tokenizer folder {args.tokenizer!r} not found; pass a folder written by save_pretrained.")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    stats = corpus_stats(
        args.dataset, dataset_config=args.dataset_config, text_column=args.text_column, txt_mode=args.txt_mode,
        tokenizer=tokenizer,
    )
    if args.json:
        print(json.dumps({k: v for k, v in asdict(stats).items() if k != "bad_row_examples"}))
        return 0
    print(f"{'dataset':<35} {args.dataset}")
    for name, value in asdict(stats).items():
        if name == "bad_row_reasons":
            value = ", ".join(f"{n:,} {reason}" for reason, n in value.items()) or "-"
        elif name != "bad_row_examples":
            value = "-" if value is None else f"{value:,}"
        else:
            continue
        print(f"{name:<35} {value}")
    for example in stats.bad_row_examples:
        print(f"  bad row  {example}")
    return 0


@exit_on_data_error
def _prepare_command(args) -> int:
    from dataclasses import fields

    from ..objectives import OBJECTIVES
    from .arguments import DataArguments
    from .lm_datasets import DataSummary, load_lm_datasets

    try:
        data_args = DataArguments(**{f.name: getattr(args, f.name) for f in fields(DataArguments)})
    except ValueError as err:
        return print_error(err)
    if data_args.streaming:
        return print_error("streaming: a streamed corpus is read while training; there is nothing to prepare")
    from transformers import AutoTokenizer

    objective = OBJECTIVES[args.objective]
    path = args.tokenizer or objective.tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError:
        raise DataError(f"tokenizer: cannot load {path!r}; give a folder made by tokenizers/train_bpe.py") from None
    summary = DataSummary()
    load_lm_datasets(data_args, tokenizer, args.objective, summary=summary)
    print(summary.line())
    return 0


def register(subparsers) -> None:
    from .arguments import SOURCE_OPTIONS, DataArguments, add_dataclass_arguments

    data = subparsers.add_parser("data", help="inspect a corpus", description="Inspect a corpus before training on it.")
    verbs = data.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    stats = verbs.add_parser(
        "stats", help="documents, characters, tokens, empty/duplicate documents and bad rows of a corpus",
        description="Count documents, characters, tokens, empty and exact-duplicate documents and bad rows "
        "over the whole corpus (train and validation).",
    )
    # the recipes' own definitions of the options that say which text is read (all of it: both splits)
    add_dataclass_arguments(stats, DataArguments, only=tuple(o for o in SOURCE_OPTIONS if o != "validation_split_percentage"))
    stats.add_argument("--tokenizer", default=None, help="tokenizer folder, to count tokens")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(func=_stats_command)

    prepare = verbs.add_parser(
        "prepare", help="tokenise, pack and cache a corpus before a (multi-GPU) launch",
        description="Tokenise, pack and cache a corpus exactly as a recipe with the same options would, so a "
        "launch only loads it. Takes every data option of the recipes.",
    )
    from ..objectives import OBJECTIVES

    prepare.add_argument("--objective", choices=list(OBJECTIVES), default="mlm",
                         help=", ".join(f"{o.name}: {o.description} ({o.family})" for o in OBJECTIVES.values()))
    prepare.add_argument("--tokenizer", default=None,
                         help="tokenizer folder or Hub id; default: the 8k BPE shipped for the objective")
    add_dataclass_arguments(prepare, DataArguments)
    prepare.set_defaults(func=_prepare_command)
