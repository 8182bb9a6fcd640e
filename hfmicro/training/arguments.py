"""Recipe options: model, data (hfmicro.data.DataArguments) and training (every TrainingArguments field).

`--config recipe.yaml` gives defaults and any `--field value` flag overrides them (the TRL convention).
A key that no dataclass knows, in the YAML or on the command line, is an error naming the key.
"""

import argparse
import os
import re
import sys
import types
import typing
from argparse import ArgumentTypeError
from dataclasses import dataclass, fields, make_dataclass

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..data import DataArguments
from ..data.arguments import option
from ..objectives import OBJECTIVES
from ..presets import PRESETS
from .hardware import Hardware, resolve_precision

RENAMED = {"probe_steps": "demo_steps"}  # old option -> its name now, for the error message
# config fields that are not options: the vocabulary and special tokens follow the tokenizer; the cache is for
# generation
NOT_OPTIONS = ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "use_cache")
_HELP = {"max_position_embeddings": "Positions the model supports; default: the data's max_seq_length."}


def _config_docs(config_class) -> dict[str, str]:
    """Each field's description in the config class's docstring (its `Args:` block)."""
    docs, name = {}, None
    for line in (config_class.__doc__ or "").splitlines():
        if match := re.match(r" {8}(\w+): (.*)", line):
            name = match.group(1)
            docs[name] = match.group(2)
        elif name and line.startswith(" " * 12):
            docs[name] += " " + line.strip()
    return docs


def _option_type(annotation):
    """The flag's type for a config field's annotation: None removed, `float | int` read as a float."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = tuple(a for a in args if a is not type(None))
        annotation = float if set(args) == {float, int} else args[0]
    return annotation


def _model_option_fields() -> list[tuple[str, type, object]]:
    """One `X | None = None` field per config field of either family (None keeps the preset's value), with
    the config's own description as help; a field of one family only says which."""
    options: dict[str, tuple[type, str]] = {}
    for config_class in (objective.config_cls for objective in OBJECTIVES.values()):
        docs, family = _config_docs(config_class), config_class.__name__.removesuffix("Config")
        for name, annotation in config_class.__annotations__.items():
            if name in NOT_OPTIONS:
                continue
            help_text = _HELP.get(name, docs.get(name, ""))
            if name in options:
                options[name] = (options[name][0], help_text)  # both families: no family named
            else:
                options[name] = (_option_type(annotation), f"{family}: {help_text}")
    return [(name, kind | None, option(None, text)) for name, (kind, text) in options.items()]



class _ModelOptions:
    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")

    def config_overrides(self) -> dict:
        """The model-config fields given explicitly (None = keep the preset's value)."""
        names = [f.name for f in fields(self) if f.name not in ("preset", "tokenizer", "use_moe")]
        overrides = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if self.use_moe and "num_experts" not in overrides:
            overrides["num_experts"] = 4
        return overrides


# The model options: a preset, a tokenizer, and every field of MicroBertConfig / MicroGPTConfig, derived from
# the config classes so that a field added there is an option at once.
ModelArguments = make_dataclass("ModelArguments", [
    ("preset", str, option("microbert-toy", f"Model size, a row of the preset table: {', '.join(PRESETS)}. Any field "
                                            "below overrides it.")),
    ("tokenizer", str | None, option(None, "Tokenizer folder or Hub id; default: the 8k BPE shipped in tokenizers/ for "
                                           "this objective.")),
    *_model_option_fields(),
    ("use_moe", bool, option(False, "MicroGPT: mixture-of-experts MLPs (4 experts, top-2 unless set).")),
], bases=(_ModelOptions,), namespace={"__module__": __name__})


@dataclass
class PretrainingArguments(TrainingArguments):
    """TrainingArguments plus the knobs our users tune; defaults suit pre-training small models."""

    output_dir: str = option("outputs/run", "Where checkpoints and the final model go.")
    precision: str = option("auto", "auto (bf16 on compute capability >= 8.0, fp16 on T4/V100, fp32 on CPU), bf16, "
                            "fp16 or fp32.")
    min_lr_ratio: float = option(0.1, "Cosine decay ends at this fraction of the peak learning rate (0 = to zero).")
    early_stopping_patience: int = option(0, "Stop after this many evaluations without improvement (0 = never).")
    force_fresh: bool = option(False, "Start over instead of resuming from the newest checkpoint in output_dir.")
    max_nonfinite_steps: int = option(0, "Skip up to N optimizer steps whose loss or gradient norm is NaN/Inf (fp16 "
                                      "spikes); 0 = stop at the first, naming the step and the last good "
                                      "checkpoint.")
    auto_batch_size: bool = option(False, "Pick per_device_train_batch_size from GPU memory (ignored on CPU).")
    max_eval_samples: int | None = option(2000, "Evaluate on at most this many blocks (a streamed validation split "
                                          "is endless).")
    demo_steps: int = option(0, "Print a fill-mask demo (MLM) or a generated sample (CLM) every N steps (0 = at "
                             "each eval).")
    learning_rate: float = option(1e-3, "Peak learning rate (AdamW).")
    lr_scheduler_type: str = option("cosine_with_min_lr", "Learning-rate schedule.")
    warmup_steps: float = option(0.05, "Warmup: steps (>= 1) or a fraction of training (< 1).")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    adam_beta2: float = option(0.98, "AdamW beta2 (0.98 is steadier for short runs).")
    per_device_train_batch_size: int = option(32, "Batch size per device.")
    per_device_eval_batch_size: int = option(64, "Eval batch size per device.")
    eval_strategy: str = option("steps", "When to evaluate: no, steps or epoch.")
    eval_steps: float | None = option(200, "Evaluate every N steps.")
    save_steps: float = option(200, "Checkpoint every N steps.")
    save_total_limit: int | None = option(2, "Keep at most N checkpoints (never the best).")
    logging_steps: float = option(20, "Log every N steps.")
    load_best_model_at_end: bool = option(True, "End with the best checkpoint by eval loss.")
    metric_for_best_model: str | None = option("eval_loss", "Metric that picks the best.")
    include_num_input_tokens_seen: str | bool = option(True, "Count the tokens read (every log, the history and "
                                                       "eval_results.json).")
    ddp_find_unused_parameters: bool | None = option(False, "Every parameter is used in every step (MoE experts "
                                                     "too), so DDP skips the search.")

    def __post_init__(self):
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        self._check_values()
        if self.max_nonfinite_steps < 0:
            raise ValueError(f"max_nonfinite_steps must be >= 0, got {self.max_nonfinite_steps}")
        if self.early_stopping_patience < 0:
            raise ValueError(f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}")
        if self.early_stopping_patience and str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no":
            raise ValueError("early_stopping_patience counts evaluations, but eval_strategy is 'no'; evaluate (e.g. "
                             "--eval_strategy steps) or set --early_stopping_patience 0")
        if self.lr_scheduler_type == "cosine_with_min_lr" and not self.lr_scheduler_kwargs:
            self.lr_scheduler_kwargs = {"min_lr_rate": self.min_lr_ratio}
        if (self.bf16 or self.fp16) and self.precision != ("bf16" if self.bf16 else "fp16"):
            flag = "bf16" if self.bf16 else "fp16"
            raise ValueError(f"precision: --{flag} conflicts with --precision {self.precision}; say it once, with "
                             f"--precision {flag} (auto picks bf16, fp16 or fp32 from the hardware)")
        super().__post_init__()

    def _check_values(self) -> None:
        """Values Trainer would only trip over later (in AdamW, the banner or the scheduler)."""
        positive = ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
                    "gradient_accumulation_steps", "num_train_epochs", "save_steps", "eval_steps", "logging_steps")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be > 0 (or -1: train for num_train_epochs), got {self.max_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0 (steps, or a fraction of training below 1), got "
                             f"{self.warmup_steps}")


def _parser() -> HfArgumentParser:
    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments), allow_abbrev=False)
    parser.add_argument("--config", default=None, help="Recipe YAML whose keys are any of the fields below.")
    return parser


def _known_keys(parser: HfArgumentParser) -> set[str]:
    return {f.name for dtype in parser.dataclass_types for f in fields(dtype) if f.init}


def read_options(argv: list[str] | None = None, defaults: dict | None = None) -> argparse.Namespace:
    """Every option's value from `--config x.yaml` and flags, nothing built or started yet.

    `defaults` are the script's own (e.g. the preset for its objective); the YAML overrides them and
    the flags override both. Raises ValueError naming an unknown key or a bad value."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    known = _known_keys(parser)
    config_path = None
    if argv.count("--config") > 1:
        raise ValueError("--config is given twice; give one recipe and override its fields with flags")
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ValueError("--config needs a YAML file path")
        config_path = argv[i + 1]
        del argv[i : i + 2]
    values = dict(defaults or {})
    if config_path:
        values.update(_typed(parser, load_recipe_yaml(config_path, known), config_path))
    parser.set_defaults(**values)

    namespace, remaining = parser.parse_known_args(args=argv)
    if remaining:
        unknown = [a for a in remaining if a.startswith("--")] or remaining
        renamed = RENAMED.get(unknown[0].lstrip("-").split("=")[0])
        hint = f"it is now --{renamed}" if renamed else "see --help for the fields a recipe accepts"
        raise ValueError(f"unknown option {unknown[0]}: {hint}")
    return namespace


def settle_precision(options: argparse.Namespace, hardware: Hardware) -> None:
    """Device and precision for `hardware`: `precision` becomes what `auto` resolves to and sets bf16/fp16; a
    machine without GPUs sets use_cpu explicitly, so transformers sets up CPU DDP (gloo) for several
    processes and allows bf16 autocast on CPU. Explicit --bf16/--fp16 flags must agree with --precision
    (checked by the arguments, which see them as given)."""
    options.use_cpu = hardware.device == "cpu"
    flag = "bf16" if options.bf16 else "fp16" if options.fp16 else None
    if flag is None or options.precision == flag:  # a conflict is reported by the arguments themselves
        options.precision = resolve_precision(options.precision, hardware)
        options.bf16, options.fp16 = options.precision == "bf16", options.precision == "fp16"


def recipe_arguments(options: argparse.Namespace, hardware: Hardware | None = None):
    """(ModelArguments, DataArguments, PretrainingArguments) of the options, with device and precision
    settled for `hardware` (None: as asked, e.g. `hfmicro estimate` planning for another machine). Building
    PretrainingArguments sets up transformers' distributed state, as TrainingArguments always does."""
    if hardware is not None:
        settle_precision(options, hardware)  # before TrainingArguments: its __post_init__ sets up the device
    values = vars(options)
    return tuple(dtype(**{f.name: values[f.name] for f in fields(dtype) if f.init})
                 for dtype in (ModelArguments, DataArguments, PretrainingArguments))


def parse_recipe(argv: list[str] | None = None, defaults: dict | None = None, *, hardware: Hardware | None = None):
    """`read_options`, then `recipe_arguments`: the recipe's three argument dataclasses."""
    return recipe_arguments(read_options(argv, defaults), hardware)


def check_launch(data_args: DataArguments, args: PretrainingArguments) -> None:
    """What a training launch cannot start with, though each option alone is valid."""
    if args.hub_token:
        raise ValueError("hub_token: do not pass the Hub token as an option (it would be saved with the run); "
                         "use `hf auth login` or the HF_TOKEN environment variable")
    if data_args.streaming and args.max_steps <= 0:
        raise ValueError("max_steps: a streamed dataset has no length, so give --max_steps (e.g. --max_steps 20000)")
    if args.early_stopping_patience and not (args.load_best_model_at_end and args.metric_for_best_model):
        raise ValueError("early_stopping_patience needs load_best_model_at_end and metric_for_best_model")


def _typed(parser: HfArgumentParser, values: dict, path: str) -> dict:
    """YAML strings converted as the same flag would be: YAML reads `1e-3` (no dot) and `'30'` as strings,
    which argparse leaves alone in defaults (a string learning rate or `pre_norm: 'yes'` got through)."""
    converters = {action.dest: action.type for action in parser._actions}
    typed = dict(values)
    for key, value in values.items():
        convert = converters.get(key)
        if isinstance(value, str) and convert not in (None, str):
            try:
                typed[key] = convert(value)
            except (TypeError, ValueError, ArgumentTypeError):
                raise ValueError(f"{path}: {key}: {value!r} is not a valid value for this field (see --help)") from None
    return typed


def load_recipe_yaml(path: str, known: set[str] | None = None) -> dict:
    """The recipe's key: value mapping; unknown keys are refused with the file and key named."""
    if not os.path.isfile(path):
        raise ValueError(f"recipe file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must be a mapping of option: value")
    if known is None:
        known = _known_keys(_parser())
    for key in values:
        if key not in known:
            hint = (f"it is now {RENAMED[key]!r}" if key in RENAMED
                    else "not a model, data or training option; see --help")
            raise ValueError(f"{path}: unknown key {key!r} ({hint})")
    return values
