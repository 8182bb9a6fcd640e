"""Training throughput of MicroBERT / MicroGPT against the stock transformers models, in the same run.

    python bench/bench_models.py                      # CPU, the default small shapes
    python bench/bench_models.py --device cuda --dtype bf16 --hidden 768 --layers 12 --batch 64

One step = forward + backward + AdamW update on a random batch (MLM: 15 % of tokens scored).
Models are timed in alternating rounds so that background load affects all of them alike; the
median step time is reported. Prints tokens/s and the ratio to the stock model of the same family.
"""

import argparse
import os
import statistics
import time

import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

import hfmicro
from hfmicro import MicroBertConfig, MicroBertForMaskedLM, MicroGPTConfig, MicroGPTForCausalLM
from hfmicro.objectives import OBJECTIVES
from hfmicro.presets import PRESETS
from hfmicro.training.hardware import machine_description

FAST_OPTIONS = dict(use_bias=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# what the default recipes' presets add (rotary; for MicroGPT also QK-norm, ReLU², zero-init projections)
RECIPE_OPTIONS = {family: {k: v for k, v in PRESETS[name].extra.items() if k not in FAST_OPTIONS}
                  for family, name in (("mlm", "microbert-4l-256d"), ("clm", "microgpt-4l-256d"))}


def build_models(args) -> dict[str, tuple[str, torch.nn.Module]]:
    dims = dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                max_position_embeddings=args.seq)
    gpt2_dims = dict(vocab_size=args.vocab, n_embd=args.hidden, n_layer=args.layers, n_head=args.heads,
                     n_positions=args.seq)
    return {
        "stock BertForMaskedLM": ("mlm", BertForMaskedLM(BertConfig(**dims))),
        "MicroBERT, BERT-compatible, dense head": ("mlm", MicroBertForMaskedLM(MicroBertConfig(**dims, sparse_prediction=False))),
        "MicroBERT, BERT-compatible, sparse head": ("mlm", MicroBertForMaskedLM(MicroBertConfig(**dims))),
        "MicroBERT, pre-LN, no bias, no dropout": ("mlm", MicroBertForMaskedLM(MicroBertConfig(**dims, pre_norm=True, **FAST_OPTIONS))),
        "MicroBERT, the default recipe's (+ rotary, no token types)": ("mlm", MicroBertForMaskedLM(MicroBertConfig(
            **dims, **FAST_OPTIONS, **RECIPE_OPTIONS["mlm"]))),
        "stock GPT2LMHeadModel": ("clm", GPT2LMHeadModel(GPT2Config(**gpt2_dims))),
        "MicroGPT, GPT-2-compatible": ("clm", MicroGPTForCausalLM(MicroGPTConfig(**dims))),
        "MicroGPT, no bias, no dropout": ("clm", MicroGPTForCausalLM(MicroGPTConfig(**dims, **FAST_OPTIONS))),
        "MicroGPT, the default recipe's (+ rotary, QK-norm, ReLU², zero-init)": ("clm", MicroGPTForCausalLM(MicroGPTConfig(
            **dims, **FAST_OPTIONS, **RECIPE_OPTIONS["clm"]))),
    }


def make_batch(objective, args, device):
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, args.vocab, (args.batch, args.seq), generator=g)
    labels = input_ids.clone()
    if OBJECTIVES[objective].masked:
        labels[torch.rand(input_ids.shape, generator=g) > args.mlm_probability] = -100
    return input_ids.to(device), labels.to(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16 = autocast")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--mlm_probability", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each times every model)")
    parser.add_argument("--steps", type=int, default=3, help="steps per model per round")
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    device = torch.device(args.device)
    models = build_models(args)
    state = {}
    for name, (objective, model) in models.items():
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        state[name] = (objective, model, optimizer, make_batch(objective, args, device))

    def step(name):
        objective, model, optimizer, (input_ids, labels) = state[name]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for name in state:  # warm-up
        for _ in range(2):
            step(name)
    times = {name: [] for name in state}
    for _ in range(args.rounds):
        for name in state:
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            sync()
            times[name].append((time.perf_counter() - t0) / args.steps)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else machine_description()
    print(f"# {time.strftime('%Y-%m-%d')}  {where}  torch {torch.__version__}  hfmicro {hfmicro.__version__}")
    print(f"# {args.layers} layers, d={args.hidden}, {args.heads} heads, vocab {args.vocab}, batch {args.batch} x seq "
          f"{args.seq}, {args.dtype}, MLM masking {args.mlm_probability:.0%}; median of {args.rounds} rounds")
    print(f"{'model':<66} {'params':>11} {'ms/step':>9} {'tokens/s':>10} {'vs stock':>9}")
    baseline = {}
    for name, (objective, model, _, _) in state.items():
        ms = statistics.median(times[name]) * 1000
        tokens_per_s = args.batch * args.seq / (ms / 1000)
        baseline.setdefault(objective, tokens_per_s)
        print(f"{name:<66} {model.num_parameters():>11,} {ms:>9.1f} {tokens_per_s:>10,.0f} "
              f"{tokens_per_s / baseline[objective]:>8.2f}x")


if __name__ == "__main__":
    main()
