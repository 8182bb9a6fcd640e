"""`hfmicro estimate --config recipes/x.yaml [--gpu h100] [--num_gpus 8]`: what a recipe will cost before
it runs: exact parameters, memory per device (weights, gradients, AdamW state, activations, margin),
tokens per step and the time for its budget.

Parameters are counted on the meta device. Memory is hfmicro.training.memory's model (the one
`--auto_batch_size` fits a batch with): activations are measured on the recipe's own model, not guessed.
"""

from .verbs import add_verb, answer


def assumed_mfu(params: int) -> float:
    """The model-FLOPs utilisation the time estimate assumes on a GPU. nanochat reports 41-46 % on H100
    and MosaicML 43 % at 125M parameters; small models fill a GPU less (their matmuls are too small to keep
    the tensor cores busy and kernel launches dominate), so 40 % from 100M parameters, 30 % from 10M,
    20 % below. `--mfu` replaces it, `--measure` measures tokens/s here instead."""
    return 0.40 if params >= 100e6 else 0.30 if params >= 10e6 else 0.20


def estimate(model_args, data_args, args, *, gpu: str | None = None, num_gpus: int = 1, mfu: float | None = None,
             measure: bool = False) -> dict:
    import torch

    from .models import count_parameters, flops_per_token
    from .objectives import objective_of_family
    from .presets import PRESETS, build_model
    from .training.build import load_tokenizer, model_config
    from .training.hardware import Hardware, detect_hardware, resolve_precision
    from .training.memory import activation_cost, training_memory

    objective = objective_of_family(PRESETS[model_args.preset].family)
    tokenizer = load_tokenizer(model_args.tokenizer or objective.tokenizer, objective)
    config = model_config(model_args, data_args, tokenizer, objective)
    with torch.device("meta"):
        counts = count_parameters(build_model(config))
    if gpu in (None, "here"):
        hardware = detect_hardware(False)
    elif gpu == "cpu":
        hardware = Hardware("cpu", "cpu", None, None)
    else:
        hardware = Hardware.of(gpu)
    precision = resolve_precision(args.precision, hardware)
    params = counts["total"]
    batch, seq = args.per_device_train_batch_size, data_args.max_seq_length
    acts = activation_cost(config, seq, objective, data_args.mlm_probability, precision,
                           bool(args.gradient_checkpointing))
    memory = training_memory(params, config, objective, batch, seq, data_args.mlm_probability, acts, num_gpus,
                             on_gpu=hardware.device == "cuda")
    total = sum(memory.values())
    tokens_per_step = batch * seq * args.gradient_accumulation_steps * num_gpus
    steps = args.max_steps if args.max_steps > 0 else _epoch_steps(data_args, tokenizer, objective, args, num_gpus)
    result = {
        "preset": model_args.preset, "objective": objective.name, "parameters": counts, "device": hardware.name,
        "num_gpus": num_gpus, "precision": precision, "batch_per_device": batch, "max_seq_length": seq,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "gradient_checkpointing": bool(args.gradient_checkpointing), "memory_bytes": memory,
        "memory_total_bytes": total, "device_memory_bytes": hardware.memory_bytes,
        "fits": None if hardware.memory_bytes is None else total <= hardware.memory_bytes,
        "activation_bytes_per_sequence": acts.per_sequence, "tokens_per_step": tokens_per_step,
        "steps": steps, "tokens": steps * tokens_per_step if steps else None,
        "flops_per_token": flops_per_token(config, seq),
    }
    peak = hardware.peak_flops(precision)
    if measure:
        tokens_per_s = measure_tokens_per_second(config, batch, seq, objective, data_args.mlm_probability, precision)
        result.update(tokens_per_second=tokens_per_s, tokens_per_second_source="measured here")
    elif peak:
        result["mfu"] = mfu or assumed_mfu(params)
        tokens_per_s = result["mfu"] * peak * num_gpus / result["flops_per_token"]
        result.update(tokens_per_second=tokens_per_s, peak_flops=peak,
                      tokens_per_second_source=f"{result['mfu']:.0%} of {peak / 1e12:g} TFLOP/s peak x {num_gpus}")
    else:
        tokens_per_s = None
        result["tokens_per_second"] = None
    if tokens_per_s and steps:
        result["hours"] = steps * tokens_per_step / tokens_per_s / 3600
    return result


def _epoch_steps(data_args, tokenizer, objective, args, num_gpus: int) -> int | None:
    """Steps of `num_train_epochs` when the corpus is already prepared (its block count is in the cache)."""
    from .data.cache import cache_key, read_entry
    from .data.lm_datasets import cache_inputs
    from .training.build import epoch_steps

    if data_args.streaming:
        return None
    entry = read_entry(cache_key(cache_inputs(data_args, tokenizer, objective.name)))
    return epoch_steps(entry["summary"]["train"]["blocks"], args, num_gpus) if entry else None


def measure_tokens_per_second(config, batch: int, seq_len: int, objective, mlm_probability: float,
                              precision: str, steps: int = 5) -> float:
    """Training tokens/s of the recipe's model on this machine: forward, backward and AdamW on random
    tokens (the first two steps warm up and are not timed)."""
    import time

    import torch

    from .presets import build_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, config.vocab_size, (batch, seq_len), device=device)
    labels = ids.clone()
    if objective.masked:
        labels[torch.rand(batch, seq_len, device=device) >= mlm_probability] = -100
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    for step in range(steps + 2):
        if step == 2:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch * seq_len / (time.perf_counter() - start)


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def format_estimate(r: dict) -> str:
    counts = r["parameters"]
    active = f" ({counts['active']:,} active per token)" if counts["active"] != counts["total"] else ""
    lines = [
        f"{r['preset']} ({r['objective']}): {counts['total']:,} parameters{active}",
        f"on {r['num_gpus']} x {r['device']}, {r['precision']}, batch {r['batch_per_device']} x {r['max_seq_length']} "
        f"per device, {r['gradient_accumulation_steps']} accumulation step(s)"
        + (", gradient checkpointing" if r["gradient_checkpointing"] else ""),
        "memory per device:",
    ]
    for part, n in r["memory_bytes"].items():
        lines.append(f"  {part:<14} {_gb(n):>10}")
    room = ""
    if r["device_memory_bytes"]:
        room = f" of {_gb(r['device_memory_bytes'])} ({'fits' if r['fits'] else 'does NOT fit: lower the batch or use --gradient_checkpointing'})"
    lines.append(f"  {'total':<14} {_gb(r['memory_total_bytes']):>10}{room}")
    lines.append(f"tokens per optimizer step {r['tokens_per_step']:,}")
    if r["steps"]:
        lines.append(f"steps {r['steps']:,}, tokens {r['tokens']:,}")
    else:
        lines.append("steps: unknown until the corpus is prepared (`hfmicro data prepare` with the same options), "
                     "or give --max_steps")
    if r["tokens_per_second"]:
        lines.append(f"throughput {r['tokens_per_second']:,.0f} tokens/s ({r['tokens_per_second_source']})")
    else:
        lines.append("throughput: no known peak for this device; --measure times a few real steps here")
    if r.get("hours"):
        lines.append(f"time {r['hours']:.1f} h" + (f" ({r['hours'] / 24:.1f} days)" if r["hours"] > 48 else ""))
    return "\n".join(lines)


def _estimate_command(args, rest: list[str]) -> int:
    from .objectives import OBJECTIVES
    from .training.arguments import parse_recipe

    def planned() -> dict:
        # the recipe's own preset decides the objective; without one, the MLM default
        model_args, data_args, training_args = parse_recipe(rest, defaults={"preset": OBJECTIVES["mlm"].default_preset})
        return estimate(model_args, data_args, training_args, gpu=args.gpu, num_gpus=args.num_gpus, mfu=args.mfu,
                        measure=args.measure)

    return answer(args, planned, format_estimate)


def register(subparsers) -> None:
    from .training.hardware import GPUS

    parser = add_verb(subparsers, "estimate", _estimate_command, "parameters, memory per device, tokens per step and "
                      "time of a recipe", "What a recipe costs before it runs: exact parameters, per-device memory "
                      "(weights, gradients, AdamW state, activations measured from the model's own forward pass, "
                      "margin), tokens per optimizer step and the time for its budget. Takes --config and any recipe "
                      "field.")

    parser.add_argument("--gpu", choices=[*GPUS, "cpu", "here"], default="here",
                        help="the device to estimate for (here: this machine's)")
    parser.add_argument("--num_gpus", type=int, default=1, help="devices in data parallel")
    parser.add_argument("--mfu", type=float, default=None, help="model FLOPs utilisation to assume (default: by size)")
    parser.add_argument("--measure", action="store_true", help="measure tokens/s with a few real steps here")
    parser.set_defaults(pass_rest=True)
