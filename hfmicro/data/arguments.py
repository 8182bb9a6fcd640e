"""`DataArguments`: every data option of the recipes, parsed by `transformers.HfArgumentParser`."""

import argparse
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields

from .files import TXT_MODES

# a number, a decimal unit (k, M, G or B for billion, T) and, after a unit, an optional B for bytes
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])b?|(b))?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(value: str | int | None) -> int | None:
    """The one reader of counts and sizes: '500k' → 500_000, '5M' → 5_000_000, '1.5m' → 1_500_000,
    '1B' = '1G' = '1GB' → 10**9, '500MB' → 500_000_000, 42 → 42, None → None (decimal units)."""
    if value is None or isinstance(value, int):
        return value
    match = _COUNT.match(str(value))
    if not match:
        raise ValueError(f"cannot read {value!r} as a count or size; write e.g. 20000, 500k, 5M, 1B or 500MB")
    number = float(match.group(1)) * _SCALE[(match.group(2) or match.group(3) or "").lower()]
    if number != int(number):
        raise ValueError(f"{value!r} is not a whole number of items")
    return int(number)


def option(default, help: str):
    """A dataclass field and its --help text (HfArgumentParser and add_dataclass_arguments show it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class DataArguments:
    dataset: str = option("builtin", "Corpus: 'builtin' (offline English prose shipped with Python), a local "
                          ".txt/.jsonl/.json/.csv/.parquet file (optionally .gz), a glob or a folder, or a Hub dataset "
                          "name (e.g. wikitext).")
    dataset_config: str | None = option(None, "Hub dataset configuration, e.g. wikitext-103-raw-v1.")
    text_column: str = option("text", "Column (JSON field) that holds the document text.")
    txt_mode: str = option("auto", "How .txt files split into documents: 'paragraph' (blank-line separated), 'line' "
                           "(one per line) or 'auto' (line when the file has no blank lines, else paragraph).")
    streaming: bool = option(False, "Stream the corpus instead of preparing it on disk (not cached; for huge corpora).")
    max_samples: str | None = option(None, "Read at most this many training documents (and as many validation ones): "
                                     "20000, 500k, 5M.")
    validation_split_percentage: float = option(5.0, "Percent of documents held out for validation when the source "
                                                "has no validation split.")
    max_seq_length: int = option(128, "Tokens per packed block.")
    keep_partial_block: bool = option(False, "Keep the last, shorter block of each split instead of dropping it (the "
                                      "count is logged).")
    static_masking: bool = option(False, "MLM only: mask once at preprocessing (stored, seeded by masking_seed) "
                                  "instead of per batch.")
    mlm_probability: float = option(0.15, "Fraction of tokens masked for MLM.")
    preprocessing_num_workers: int | None = option(None, "Processes for tokenisation; default 1 (the Rust tokenizer "
                                                   "already uses every core).")
    masking_seed: int = option(42, "Seed for MLM masks: static, once per block; dynamic, per batch from this seed and "
                               "its tokens.")
    overwrite_cache: bool = option(False, "Rebuild the packed dataset even if it is cached.")

    def __post_init__(self):
        if not self.dataset or not self.dataset.strip():
            raise ValueError("dataset must not be empty; use 'builtin' for the offline corpus")
        if self.txt_mode not in TXT_MODES:
            raise ValueError(f"txt_mode must be one of {TXT_MODES}, got {self.txt_mode!r}")
        try:
            count = parse_count(self.max_samples)
        except ValueError as err:
            raise ValueError(f"max_samples: {err}") from None
        if count is not None and count < 1:
            raise ValueError(f"max_samples must be at least 1, got {self.max_samples!r}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ValueError(f"validation_split_percentage must be in [0, 100), got {self.validation_split_percentage}")
        if self.max_seq_length < 2:
            raise ValueError(f"max_seq_length must be at least 2, got {self.max_seq_length}")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.preprocessing_num_workers is not None and self.preprocessing_num_workers < 1:
            raise ValueError(f"preprocessing_num_workers must be at least 1, got {self.preprocessing_num_workers}")
        if self.static_masking and self.streaming:
            raise ValueError("static_masking needs a prepared dataset; it cannot be combined with streaming")
        if self.static_masking and self.keep_partial_block:
            raise ValueError("static_masking stores equal-length blocks to stack; drop keep_partial_block")

    @property
    def max_documents(self) -> int | None:
        return parse_count(self.max_samples)


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


# the options that say which text is read: shared by the recipes, train_bpe.py and `hfmicro data stats`
SOURCE_OPTIONS = ("dataset", "dataset_config", "text_column", "txt_mode", "validation_split_percentage")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, only: tuple[str, ...] | None = None) -> None:
    """`--field value` options for a dataclass's fields, with their help and defaults: the one
    definition of the data options, for the `hfmicro` verbs (the recipes read the same dataclass through
    HfArgumentParser). Values are checked by the dataclass itself when it is built."""
    for f in fields(cls):
        if only is not None and f.name not in only:
            continue
        kind = f.type if not isinstance(f.type, str) else eval(f.type, vars(typing) | vars(types))  # noqa: S307
        args = typing.get_args(kind)
        if args and type(None) in args:  # `X | None`
            kind = next(a for a in args if a is not type(None))
        default = f.default if f.default is not MISSING else None
        parser.add_argument(f"--{f.name}", type=_bool if kind is bool else kind, default=default,
                            metavar=f.name.upper() if kind is not bool else "true|false",
                            help=f"{f.metadata.get('help', '')} (default: {default})")
