"""Every model size in one table.

Each row gives the dimensions, where the size comes from, and its exact parameter count with its options
(`extra`; the stock-compatible config defaults for everything else; tied embeddings counted once);
`tests/test_presets.py` rebuilds every row and checks the count. A recipe picks a row by name and may override any config field (the vocabulary
size follows the tokenizer, so its count then differs from the table's).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    family: str  # "microbert" (masked LM) or "microgpt" (causal LM)
    num_hidden_layers: int
    num_attention_heads: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    params: int  # exact, at these dimensions with `extra` and the config defaults for the rest
    source: str
    extra: dict = field(default_factory=dict)  # other config fields (the options above, MoE)
    active: int | None = None  # parameters used per token, where it differs from params (MoE)

    def config_kwargs(self) -> dict:
        keys = ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size", "vocab_size",
                "max_position_embeddings")
        return {k: getattr(self, k) for k in keys} | dict(self.extra)


# What the default recipes' models have beyond the stock architecture, measured on the builtin corpus
# (README, "The default recipes, measured"); the users' 8- and 3-layer rows take them too (they gain more there).
MICROBERT_OPTIONS = {"pre_norm": True, "position_embedding_type": "rotary", "use_bias": False, "hidden_dropout_prob": 0.0,
                     "attention_probs_dropout_prob": 0.0, "type_vocab_size": 0, "qk_norm": True, "hidden_act": "relu2",
                     "head_act": "gelu", "value_residual": True}
MICROGPT_OPTIONS = {"use_bias": False, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                    "position_embedding_type": "rotary", "qk_norm": True, "hidden_act": "relu2", "zero_init_residual": True}

# fmt: off
PRESETS: dict[str, Preset] = {
    # name:                      family       L   H    d     ff   vocab   seq   params
    "microbert-toy":     Preset("microbert",  2,  2,   4,    16,  8000,  128,      41_044, "users' first MicroBERT: 2 layers, 2 heads, 4-dim"),
    "microbert-2l-16d":  Preset("microbert",  2,  2,  16,    64,  8000,  128,     144_976, "the 'balanced' 2-layer, 16-dim MLM of the users' optimisation notes"),
    "microbert-4l-8d":   Preset("microbert",  4,  4,   8,    32,  8000,  128,      76_632, "users' v2 streaming-dataset model: 4 layers, 4 heads, 8-dim"),
    "microbert-6l-16d":  Preset("microbert",  6,  8,  16,    64,  8000,  128,     158_096, "users' v3 multi-GPU model: 6 layers, 8 heads, 16-dim"),
    "microbert-4l-256d": Preset("microbert",  4,  4, 256,  1024,  8000,   64,   5_262_083, "the default MicroBERT recipe (recipes/microbert-cpu.yaml): pre-LN, rotary, QK-norm, ReLU², value residual, GELU head, no biases or dropout", extra=MICROBERT_OPTIONS),
    "microbert-8l-256d": Preset("microbert",  8,  8, 256,  1024, 25000,  256,  12_761_863, "users' v4 24 GB-optimised model: 8 layers, 8 heads, 256-dim, seq 256, 25k vocab; the default recipe's options", extra=MICROBERT_OPTIONS),
    "microbert-3l-512d": Preset("microbert",  3,  8, 512,  2048, 32000,  256,  26_087_938, "users' BERT training records: d512/h8/ff2048, 3 layers, seq 256, 30k+ vocab; the default recipe's options", extra=MICROBERT_OPTIONS),
    "microbert-base":    Preset("microbert", 12, 12, 768,  3072, 30522,  512, 109_514_298, "BERT-base dimensions (= stock BertForMaskedLM)"),
    "microgpt-toy":      Preset("microgpt",   2,  2,  16,    64,  8000,  128,     136_640, "2-layer, 16-dim GPT for tests and CPU demos"),
    "microgpt-4l-256d":  Preset("microgpt",   4,  4, 256,  1024,  8000,   64,   5_196_032, "the default MicroGPT recipe (recipes/microgpt-cpu.yaml): rotary, QK-norm, ReLU², zero-init projections, no biases or dropout", extra=MICROGPT_OPTIONS),
    "microgpt-8l-512d":  Preset("microgpt",   8,  8, 512,  2048,  8000,  512,  29_270_528, "users' 2xT4 GPT: 8 layers, d512, seq 512; the default recipe's options", extra=MICROGPT_OPTIONS),
    "microgpt-8l-512d-moe": Preset("microgpt", 8, 8, 512,  2048,  8000,  512,  79_618_560, "users' 2xT4 GPT with --use_moe: 4 experts, top-2; the default recipe's options", extra=MICROGPT_OPTIONS | {"num_experts": 4, "num_experts_per_tok": 2}, active=46_064_128),
    "microgpt-124m":     Preset("microgpt",  12, 12, 768,  3072, 50257, 1024, 124_439_808, "GPT-2 small (= stock GPT2LMHeadModel)"),
}
# fmt: on


def preset_config(name: str, **overrides):
    """The MicroBertConfig / MicroGPTConfig of a preset, with any field overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    from .objectives import objective_of_family

    preset = PRESETS[name]
    config_class = objective_of_family(preset.family).config_cls
    kwargs = preset.config_kwargs() | overrides
    for key in ("bos_token_id", "eos_token_id"):  # GPT-2's 50256 is no token of a smaller vocabulary
        default = config_class.__dataclass_fields__[key].default
        if key not in kwargs and default is not None and default >= kwargs["vocab_size"]:
            kwargs[key] = None
    return config_class(**kwargs)


def build_model(config):
    """The pre-training model of a config's family (MicroBertForMaskedLM or MicroGPTForCausalLM)."""
    from .objectives import objective_of_family

    return objective_of_family(config.model_type).model_cls(config)


def count_preset(name: str, **overrides) -> dict[str, int]:
    """Total / trainable / active parameters of a preset, counted on the meta device (no memory used)."""
    import torch

    from .models import count_parameters

    with torch.device("meta"):
        return count_parameters(build_model(preset_config(name, **overrides)))


def register(subparsers):
    parser = subparsers.add_parser("configs", help="list the model presets: parameters and weight memory")
    from .objectives import OBJECTIVES

    parser.add_argument("--family", choices=[o.family for o in OBJECTIVES.values()], help="only this model family")
    parser.set_defaults(func=_configs)


def format_bytes(n: float) -> str:
    """Decimal units, as our users' tables wrote them ("2.3M parameters ~9MB")."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _configs(args) -> int:
    header = (f"{'preset':<22} {'L':>3} {'H':>3} {'d':>4} {'ff':>5} {'vocab':>6} {'seq':>5} {'params':>12} {'active':>12} "
              f"{'fp32':>9} {'bf16':>9}  source")
    print(header)
    print("-" * len(header))
    for name, p in PRESETS.items():
        if args.family and p.family != args.family:
            continue
        active = p.active or p.params
        print(f"{name:<22} {p.num_hidden_layers:>3} {p.num_attention_heads:>3} {p.hidden_size:>4} "
              f"{p.intermediate_size:>5} {p.vocab_size:>6} {p.max_position_embeddings:>5} {p.params:>12,} "
              f"{active:>12,} {format_bytes(4 * p.params):>9} {format_bytes(2 * p.params):>9}  {p.source}")
    return 0
