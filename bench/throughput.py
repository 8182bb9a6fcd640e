"""Whole-recipe training throughput: our default recipe's model against the stock model of identical
dimensions, through the same Trainer (the recipes' PretrainingTrainer), data and collator.

    python bench/throughput.py --model microbert                     # the default CPU recipe, CPU
    python bench/throughput.py --model microgpt --json out.json
    python bench/throughput.py --model microbert --against rival     # vs ModernBertForMaskedLM (time_to_loss.py's)
    python bench/throughput.py --model microgpt --device cuda -- --preset microgpt-124m --max_seq_length 1024 \
        --per_device_train_batch_size 32                             # anything after -- is a recipe field

The stock twin is what a user builds from transformers with the same sizes and its defaults
(`BertForMaskedLM(BertConfig(...))`: post-LN, learned positions, biases, dropout 0.1, dense MLM head;
`GPT2LMHeadModel(GPT2Config(...))`: the same plus its 0.1 dropouts). Both train on the recipe's packed
blocks with the recipe's collator and optimizer settings; rounds alternate between the models so load
on the machine hits both alike, and the median round is reported. tokens/s counts every input token
(Trainer's own count); MFU (on GPUs with a known peak) uses the same FLOPs per token for both. The
matmul work of one training step of each, counted by torch's FlopCounterMode on one batch, is printed
too: where the matmuls set the pace (a CPU), the tokens/s ratio cannot go much above its ratio.
The data loader + collator alone is timed too, against what the GPU (or CPU) consumes. `--against rival`
measures ours against the rival of bench/time_to_loss.py instead (`ModernBertForMaskedLM` /
`LlamaForCausalLM` at the same dimensions), i.e. whether an equal-time comparison is an equal-step one.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time

from baselines import RIVALS, StepTimer, baseline_model, stock_twin

from hfmicro.objectives import objective_of_family

MODELS = ("microbert", "microgpt")  # the families whose default CPU recipe this times


def matmul_flops_per_token(model, batch: dict) -> float:
    """The matrix-multiply FLOPs of one training step (forward + backward) of `model` on `batch`, per input
    token, as torch's FlopCounterMode counts them; attention runs its eager path here so that its matmuls
    are counted too. On a compute-bound device two models' tokens/s cannot differ by much more than the
    inverse ratio of these."""
    from torch.utils.flop_counter import FlopCounterMode

    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    model.set_attn_implementation(implementation)
    return counter.get_total_flops() / batch["input_ids"].numel()


def loader_tokens_per_second(trainer, batches: int) -> float:
    """The train DataLoader + collator alone (what feeds the model), in tokens/s."""
    loader = iter(trainer.get_train_dataloader())
    next(loader)  # worker start-up
    start, tokens = time.perf_counter(), 0
    for _ in range(batches):
        tokens += next(loader)["input_ids"].numel()
    return tokens / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--against", choices=("stock", "rival"), default="stock",
                        help="stock: the stock twin; rival: time_to_loss.py's ModernBertForMaskedLM / LlamaForCausalLM")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, each training every model")
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per model per round")
    parser.add_argument("--skip", type=int, default=3, help="untimed steps at the start of each round")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager", "flash_attention_2", "flash_attention_3"),
                        help="attention implementation of both models")
    parser.add_argument("--vocab_size", type=int, default=None,
                        help="model vocabulary (e.g. 50257 for GPT-2 small's head; the shipped 8k tokenizer's ids fit)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the numbers as JSON")
    args, recipe_fields = parser.parse_known_args(argv)
    if recipe_fields[:1] == ["--"]:
        recipe_fields = recipe_fields[1:]

    import torch

    import hfmicro
    from hfmicro.data import load_lm_datasets, lm_data_collator
    from hfmicro.models import flops_per_token
    from hfmicro.presets import build_model
    from hfmicro.training.arguments import parse_recipe
    from hfmicro.training.build import load_tokenizer, model_config, precision_of
    from hfmicro.training.hardware import detect_hardware, machine_description
    from hfmicro.training.launch import restore_cpu_threads
    from hfmicro.training.trainer import PretrainingTrainer

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("throughput.py: --device cuda, but torch sees no GPU")
    restore_cpu_threads()
    spec = objective_of_family(args.model)
    objective = spec.name
    out = tempfile.mkdtemp(prefix="hfmicro-throughput-")
    hardware = detect_hardware(args.device == "cpu")
    # the recipe's fields first: the timed window's own settings come last and win over any of them
    model_args, data_args, train_args = parse_recipe([
        "--config", spec.recipe, *recipe_fields, "--output_dir", out, "--report_to", "none",
        "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "1000000", "--disable_tqdm", "true",
        "--load_best_model_at_end", "false", "--max_steps", str(args.skip + args.steps), "--lr_scheduler_type",
        "constant", "--warmup_steps", "0"], hardware=hardware)
    tokenizer = load_tokenizer(model_args.tokenizer or spec.tokenizer, spec)
    config = model_config(model_args, data_args, tokenizer, spec)
    if args.vocab_size:
        config.vocab_size = args.vocab_size
    torch.manual_seed(0)
    if args.against == "stock":
        other = stock_twin(config)
    else:
        other = baseline_model(RIVALS[objective], objective, tokenizer, data_args.max_seq_length, seed=0)
    torch.manual_seed(0)
    models = {"ours": build_model(config), "stock": other}  # "stock": the model compared with, either way
    for model in models.values():
        model.set_attn_implementation(args.attn)
    data = load_lm_datasets(data_args, tokenizer, objective)["train"]
    collator = lm_data_collator(data_args, tokenizer, objective)
    precision = precision_of(train_args)
    peak = hardware.peak_flops(precision)
    flops = flops_per_token(config, data_args.max_seq_length)
    device = torch.device(args.device)
    torch.manual_seed(0)  # one batch (the same masks) for both models
    batch = {k: v.to(device) for k, v in collator([data[i] for i in range(min(8, len(data)))]).items()}
    work = {name: matmul_flops_per_token(model.to(device), batch) for name, model in models.items()}

    timer = StepTimer(args.skip)
    results = {name: {"tokens_per_s": [], "peak_memory_bytes": None, "steps": None} for name in models}
    loader_rate = None
    for _ in range(args.rounds):
        for name, model in models.items():
            trainer = PretrainingTrainer(model=model, args=train_args, train_dataset=data, data_collator=collator,
                                         processing_class=tokenizer, callbacks=[timer.callback])
            if loader_rate is None:
                loader_rate = loader_tokens_per_second(trainer, batches=4 * args.steps)
            if torch.cuda.is_available() and args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            trainer.train()
            results[name]["tokens_per_s"].append(timer.tokens_per_second())
            results[name]["steps"] = trainer.state.global_step
            if args.device == "cuda":
                results[name]["peak_memory_bytes"] = torch.cuda.max_memory_allocated()

    ours, stock = (statistics.median(results[name]["tokens_per_s"]) for name in ("ours", "stock"))
    report = {
        "date": time.strftime("%Y-%m-%d"), "model": args.model, "preset": model_args.preset, "device": args.device,
        "against": type(other).__name__,
        "machine": hardware.name if args.device == "cuda" else machine_description(),
        "torch": torch.__version__, "hfmicro": hfmicro.__version__, "precision": precision,
        "batch": train_args.per_device_train_batch_size, "seq": data_args.max_seq_length,
        "parameters": {name: model.num_parameters() for name, model in models.items()},
        "attn_implementation": args.attn, "vocab_size": config.vocab_size, "torch_compile": train_args.torch_compile,
        "optim": str(train_args.optim), "ours_tok_s": round(ours, 1), "stock_tok_s": round(stock, 1),
        "ratio": round(ours / stock, 3), "rounds": {name: [round(x, 1) for x in r["tokens_per_s"]] for name, r in results.items()},
        "steps_per_round": {name: r["steps"] for name, r in results.items()},
        "loader_tok_s": round(loader_rate, 1), "loader_over_ours": round(loader_rate / ours, 1),
        "ours_matmul_flops_per_token": round(work["ours"]), "stock_matmul_flops_per_token": round(work["stock"]),
        "work_ratio": round(work["stock"] / work["ours"], 3),
    }
    if peak:
        report.update(ours_mfu=round(ours * flops / peak, 4), stock_mfu=round(stock * flops / peak, 4))
    if args.device == "cuda":
        report.update({f"{name}_peak_memory_gib": round(r["peak_memory_bytes"] / 2**30, 2) for name, r in results.items()})

    other_name = "stock" if args.against == "stock" else report["against"]
    print(f"# {report['date']}  {report['machine']}  torch {report['torch']}  hfmicro {report['hfmicro']}")
    print(f"# {args.model} ({model_args.preset}, vocab {config.vocab_size}), batch {report['batch']} x seq {report['seq']}, {precision}, "
          f"attention {report['attn_implementation']}, compile {report['torch_compile']}, {report['optim']}; "
          f"median of {args.rounds} rounds of {args.steps} steps")
    for name, rate in (("ours", ours), ("stock", stock)):
        mfu = f"  MFU {report[name + '_mfu']:.1%}" if peak else ""
        memory = f"  peak {report[name + '_peak_memory_gib']} GiB" if args.device == "cuda" else ""
        label = "ours" if name == "ours" else other_name
        print(f"{label:<6} {report['parameters'][name]:>12,} params  {rate:>10,.0f} tokens/s{mfu}{memory}")
    print(f"ratio  {report['ratio']:.2f}x   (data loader + collator alone: {loader_rate:,.0f} tokens/s, "
          f"{report['loader_over_ours']:.0f}x what ours consumes)")
    print(f"matmul work per token, forward + backward (FlopCounterMode): ours {work['ours'] / 1e6:,.1f} MFLOP, "
          f"{other_name} {work['stock'] / 1e6:,.1f} MFLOP: "
          f"{report['work_ratio']:.2f}x ours (the ceiling of the ratio where the matmuls set the pace)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
