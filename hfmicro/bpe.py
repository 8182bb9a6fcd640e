"""Byte-level BPE tokenizers for MicroBERT (`bert`) and MicroGPT (`gpt`), saved so that any
Hugging Face tool loads them: `AutoTokenizer.from_pretrained(DIR)` gives a fast tokenizer.

    hfmicro train-bpe --dataset builtin --vocab_size 8000 --model_type bert --output_dir DIR

What the two kinds contain (ids are fixed: special tokens come first in the vocabulary):

- `bert`: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; encodes `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`
  and returns `token_type_ids` (0 for A, 1 for B), which MicroBERT and stock BERT both accept.
- `gpt`: <|endoftext|>=0 is BOS and EOS, <|pad|>=1 pads. Nothing is added on encode (GPT-2
  convention): append `eos_token_id` after each document when packing. Pad differs from EOS so
  `DataCollatorForLanguageModeling(mlm=False)` keeps EOS in the labels (transformers#23530).

Training reads a bounded, streamed sample (`max_bytes`) of the corpus; the folder also gets
`training_report.json` (vocabulary size, bytes seen, seconds, fertility on held-out text).
"""

import argparse
import os
import shlex
import sys
import time
import warnings
from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .atomic import StagedFolder, write_json_atomic
from .data import packing
from .data.scripts import is_unspaced
from .data.arguments import SOURCE_OPTIONS, DataArguments, add_dataclass_arguments, parse_count

MODEL_TYPES = ("bert", "gpt")
SPECIAL_TOKENS = {
    "bert": {
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
    },
    "gpt": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>"},
}
# v5's default model_input_names lacks token_type_ids; BERT needs them to tell A from B in pairs.
MODEL_INPUT_NAMES = {
    "bert": ["input_ids", "token_type_ids", "attention_mask"],
    "gpt": ["input_ids", "attention_mask"],
}
BYTE_ALPHABET = 256  # byte-level BPE starts from every byte value, so nothing is ever unknown
SUPPORTED_VOCAB = (5_000, 32_000)  # what the recipes use and the tests of the shipped tokenizers cover
REPORT_FILE = "training_report.json"
HELDOUT_BYTES = 2_000_000  # of the validation split: enough for fertility to settle to 2-3 digits



class BpeError(ValueError):
    """A user error (bad vocabulary size, empty corpus, unwritable output dir): the CLI prints it as one line."""


def special_tokens(model_type: str) -> list[str]:
    """The special tokens of one kind, in id order, each once."""
    return list(dict.fromkeys(SPECIAL_TOKENS[model_type].values()))


def check_vocab_size(vocab_size: int, model_type: str) -> None:
    """Refuse a vocabulary that cannot hold the byte alphabet and the specials; warn outside the supported range."""
    minimum = BYTE_ALPHABET + len(special_tokens(model_type))
    low, high = SUPPORTED_VOCAB
    if vocab_size < minimum:
        raise BpeError(
            f"vocab_size {vocab_size} is too small for {model_type}: it must hold the {BYTE_ALPHABET} byte symbols and "
            f"{minimum - BYTE_ALPHABET} special tokens, so at least {minimum} (supported range: {low}-{high})"
        )
    if not low <= vocab_size <= high:
        warnings.warn(f"vocab_size {vocab_size} is outside the supported range {low}-{high} (fine for tests)",
                      stacklevel=3)


def fertility(tokenizer, texts: list[str]) -> dict:
    """Tokens per character, and per whitespace-separated word where words are separated by spaces (not in
    Chinese or Japanese text, where `split` finds phrases); special tokens not counted."""
    n_tokens = sum(map(len, packing.token_ids(texts, tokenizer)))
    n_words = 0 if is_unspaced("".join(texts[:1000])) else sum(len(t.split()) for t in texts)
    n_chars = sum(len(t) for t in texts)
    return {
        "tokens_per_word": round(n_tokens / n_words, 4) if n_words else None,
        "tokens_per_char": round(n_tokens / n_chars, 4) if n_chars else None,
        "docs": len(texts),
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
    }


class _Sample:
    """The training stream: stops at exactly `max_bytes` of UTF-8 and counts what it passed on."""

    def __init__(self, texts: Iterable[str], max_bytes: int | None):
        self.texts, self.max_bytes = texts, max_bytes
        self.bytes_seen = self.docs_seen = 0

    def __iter__(self) -> Iterator[list[str]]:
        batch = []
        for text in self.texts:
            data = text.encode("utf-8")
            if self.max_bytes is not None and self.bytes_seen + len(data) > self.max_bytes:
                # The document that crosses the cap is cut there (on a character boundary).
                text = data[: self.max_bytes - self.bytes_seen].decode("utf-8", errors="ignore")
                data = text.encode("utf-8")
                if not data:
                    break
            # a 50 MB one-line document is handed over in pieces: the trainer's memory grows with sequence length
            batch.extend(packing.text_pieces(text) if len(text) > packing.MAX_PIECE_CHARS else (text,))
            self.bytes_seen += len(data)
            self.docs_seen += 1
            if len(batch) >= 1000:  # batches cut the Python -> Rust hand-over cost per document
                yield batch
                batch = []
            if self.max_bytes is not None and self.bytes_seen >= self.max_bytes:
                break
        if batch:
            yield batch


def _backend(model_type: str, vocab_size: int, min_frequency: int) -> tuple[Tokenizer, trainers.BpeTrainer]:
    tokenizer = Tokenizer(models.BPE())
    # No prefix space: decode(encode(x)) == x exactly (a prefix space would come back on decode).
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens(model_type),  # ids 0..k-1, in SPECIAL_TOKENS order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def _finish(tokenizer: Tokenizer, model_type: str):
    """Special-token behaviour and post-processing, wrapped as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    # Offsets without the leading space (trim_offsets): whole-word masking starts a new word
    # where a token's start is not the previous token's end.
    trim = processors.ByteLevel(trim_offsets=True)
    if model_type == "bert":
        # "The [MASK] sat": the mask swallows the space before it, as a predicted "Ġcat" brings its
        # own; without lstrip fill-mask sees a stray "Ġ" token. It must be set on the backend's
        # AddedToken: the transformers wrapper ignores lstrip for a token that already exists.
        tokenizer.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True, normalized=False)])
        cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        template = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        tokenizer.post_processor = processors.Sequence([trim, template])
    else:
        tokenizer.post_processor = trim
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_input_names=MODEL_INPUT_NAMES[model_type],
        clean_up_tokenization_spaces=False,  # True would turn "a ." into "a." and break round trips
        **SPECIAL_TOKENS[model_type],
    )


def _staged_output(output_dir: str, overwrite: bool) -> StagedFolder:
    """Where the tokenizer is written before it appears as output_dir; made first so an unwritable
    destination fails before minutes of training."""
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise BpeError(f"output dir {output_dir} is a file; choose a folder path")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise BpeError(f"output dir {output_dir} is not empty; choose a new folder or pass --overwrite to replace it")
    try:
        return StagedFolder(output_dir, replace=True)  # an empty folder, or --overwrite: replaced
    except OSError as e:
        reason = "a file is in the way" if isinstance(e, FileExistsError) else e.strerror or e
        raise BpeError(f"cannot write output dir {output_dir}: {reason}; choose a folder you can write to") from None


def train_bpe(
    texts: Iterable[str],
    *,
    vocab_size: int,
    model_type: str,
    output_dir: str,
    min_frequency: int = 2,
    max_bytes: int | None = None,
    heldout: Iterable[str] = (),
    heldout_name: str = "held-out texts",
    overwrite: bool = False,
    extra_report: dict | None = None,
) -> dict:
    """Train a byte-level BPE on `texts` (at most `max_bytes` of UTF-8) and save it to `output_dir`.

    Fertility is measured on `heldout` (text not in `texts`, read after training). `output_dir`
    appears only when everything succeeded. Returns the report, also saved as
    `output_dir/training_report.json`.
    """
    if model_type not in MODEL_TYPES:
        raise BpeError(f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}")
    check_vocab_size(vocab_size, model_type)
    with _staged_output(output_dir, overwrite) as staging:
        sample = _Sample(texts, max_bytes)
        backend, trainer = _backend(model_type, vocab_size, min_frequency)
        start = time.perf_counter()
        backend.train_from_iterator(sample, trainer=trainer)
        seconds = time.perf_counter() - start
        if sample.bytes_seen == 0:
            raise BpeError("the corpus has no text to train on (no documents, or all of them empty)")
        tokenizer = _finish(backend, model_type)
        if len(tokenizer) < vocab_size:
            warnings.warn(
                f"the sample only supported {len(tokenizer)} of {vocab_size} tokens (too little text, or "
                f"min_frequency {min_frequency} too high)",
                stacklevel=2,
            )
        report = {
            "model_type": model_type,
            "vocab_size": len(tokenizer),
            "vocab_size_requested": vocab_size,
            "min_frequency": min_frequency,
            "max_bytes": max_bytes,
            "bytes_seen": sample.bytes_seen,
            "docs_seen": sample.docs_seen,
            "seconds": round(seconds, 2),
            "mb_per_s": round(sample.bytes_seen / 1e6 / seconds, 2),
            "fertility": {"heldout": heldout_name, **fertility(tokenizer, list(heldout))},
            "special_tokens": {k: tokenizer.convert_tokens_to_ids(t) for k, t in SPECIAL_TOKENS[model_type].items()},
            "versions": _versions(),
            **(extra_report or {}),
        }
        tokenizer.save_pretrained(staging)
        # Unindented, tokenizer.json is 2.4x smaller (230 KB at 8k tokens); every loader reads it the same.
        tokenizer.backend_tokenizer.save(os.path.join(staging, "tokenizer.json"), pretty=False)
        write_json_atomic(os.path.join(staging, REPORT_FILE), report, indent=2)
    return report


def _versions() -> dict:
    import tokenizers
    import transformers

    return {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def format_report(report: dict) -> str:
    fert = report["fertility"]
    return "\n".join([
        f"vocab size   {report['vocab_size']} ({report['model_type']})",
        f"bytes seen   {report['bytes_seen'] / 1e6:.1f} MB in {report['docs_seen']} documents",
        f"seconds      {report['seconds']:.1f} ({report['mb_per_s']:.1f} MB/s)",
        f"fertility    {fert['tokens_per_char']} tokens/char"
        + (f", {fert['tokens_per_word']} tokens/word" if fert["tokens_per_word"] is not None else " (no words: text without spaces)")
        + " "
        f"on {fert['heldout']} ({fert['docs']} documents, {fert['bytes'] / 1e6:.2f} MB)",
    ])


# ---- command line: `hfmicro train-bpe` and tokenizers/train_bpe.py share this parser and handler


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_dataclass_arguments(parser, DataArguments, only=SOURCE_OPTIONS)  # as the recipes read text
    parser.add_argument("--vocab_size", type=int, required=True,
                        help=f"tokens incl. specials; supported {SUPPORTED_VOCAB[0]}-{SUPPORTED_VOCAB[1]}")
    parser.add_argument("--model_type", choices=MODEL_TYPES, required=True,
                        help="special tokens for MicroBERT (bert) or MicroGPT (gpt)")
    parser.add_argument("--output_dir", required=True, help="folder to write; it appears only when training succeeded")
    parser.add_argument("--max_bytes", type=_size_argument, default="1G",
                        help="train on at most this much text, e.g. 1G, 500M, 100k (default: 1G)")
    parser.add_argument("--min_frequency", type=int, default=2, help="never merge a pair seen fewer times (default: 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace output_dir if it is not empty")
    return parser


def _size_argument(text: str) -> int:
    try:
        return parse_count(text)
    except ValueError as e:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(e)) from None


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-bpe", help="train a byte-level BPE tokenizer",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser).set_defaults(func=run)


def _command_line() -> str:
    """How this process was started, as a command to paste (recorded in the report)."""
    prog = sys.argv[0]
    if os.path.basename(prog) == "cli.py":  # python -m hfmicro.cli
        prog = "hfmicro"
    elif prog.endswith(".py"):
        prog = f"python {os.path.relpath(prog)}"
    else:
        prog = os.path.basename(prog)
    return f"{prog} {shlex.join(sys.argv[1:])}"


def run(args: argparse.Namespace) -> int:
    """Handler of `train-bpe`: read the corpus through hfmicro.data, train, save, print the report."""
    from hfmicro.data import DataError, ReadReport, iter_texts
    from hfmicro.errors import print_error

    try:
        DataArguments(**{name: getattr(args, name) for name in SOURCE_OPTIONS})  # the recipes' checks
    except ValueError as e:
        return print_error(e)
    source = {"dataset_config": args.dataset_config, "text_column": args.text_column, "txt_mode": args.txt_mode,
              "validation_split_percentage": args.validation_split_percentage}
    read = ReadReport()
    try:
        # Both streams are lazy: train_bpe checks its arguments before reading anything, and reads
        # the validation split after training.
        heldout = iter_texts(args.dataset, "validation", max_bytes=HELDOUT_BYTES, **source)
        texts = iter_texts(args.dataset, "train", max_bytes=args.max_bytes, streaming=True, report=read, **source)
        print(f"training a {args.vocab_size}-token {args.model_type} BPE on up to {args.max_bytes / 1e6:g} MB "
              f"of {args.dataset} ...", flush=True)
        report = train_bpe(
            texts,
            vocab_size=args.vocab_size,
            model_type=args.model_type,
            output_dir=args.output_dir,
            min_frequency=args.min_frequency,
            max_bytes=args.max_bytes,
            heldout=heldout,
            heldout_name="the validation split",
            overwrite=args.overwrite,
            extra_report={"dataset": args.dataset, **source, "command": _command_line()},
        )
    except (BpeError, DataError) as e:
        return print_error(e)
    print(format_report(report))
    print(f"reading: {read.describe_bad_rows()}, {read.empty_documents} empty documents")
    print(f"saved to {args.output_dir}")
    return 0
