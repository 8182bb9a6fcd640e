"""`hfmicro fill-mask` and `hfmicro generate`: try any masked or causal LM, a local folder or a Hub id,
through `transformers.pipeline`, with the model's probabilities shown.

    hfmicro fill-mask outputs/microbert-cpu "The function returns a [MASK] of the values." --top_k 5
    hfmicro generate outputs/microgpt-cpu "The module provides" --max_new_tokens 40 --num_return_sequences 3

The mask may be written `[MASK]` whatever the tokenizer's own mask token is (`<mask>` for RoBERTa-style).
"""

import argparse
import json
import math
import os

from .data.report import first_line, print_error

MASK = "[MASK]"
# sampling defaults: a little below temperature 1 and a nucleus cut the long tail of a small model's
# distribution, where its incoherent continuations come from; repetition is then measured, not hidden
SAMPLING = dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0)


def check_model_source(model: str) -> str:
    """Before loading `model` (a folder or a Hub id) in a one-shot command: register our model classes,
    silence the loading progress bars, and refuse a folder that does not exist. Returns how to name the
    source in a loading error."""
    from transformers.utils import logging

    import hfmicro.models  # noqa: F401  (registers microbert / microgpt with the Auto classes)

    logging.disable_progress_bar()  # the answer is the output
    looks_local = os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_local and not os.path.isdir(model):
        raise ValueError(f"model folder {model!r} not found")
    return "folder" if os.path.isdir(model) else "Hub id (offline, or no such model?)"


def load_pipeline(task: str, model: str):
    """`pipeline(task, model)` for a local folder or a Hub id; a missing or unsuitable model is a
    ValueError in one line. Our own folders load through the registered classes, others as they are."""
    import torch
    from transformers import pipeline

    where = check_model_source(model)
    try:
        return pipeline(task, model=model, device=0 if torch.cuda.is_available() else -1)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load {model!r} ({where}) as a {task} model: {first_line(err)}") from None


def fill_mask(pipe, text: str, top_k: int = 5) -> list[list[dict]]:
    """For each mask in `text`, the `top_k` predictions: token, probability and the filled-in text."""
    mask = pipe.tokenizer.mask_token
    if mask is None:
        raise ValueError(f"{pipe.model.name_or_path} has no mask token: it is not a masked language model")
    text = text.replace(MASK, mask)
    n_masks = text.count(mask)
    if not n_masks:
        raise ValueError(f"the text has no mask: write {MASK} where a word is missing")
    results = pipe(text, top_k=top_k)
    if n_masks == 1:
        results = [results]
    return [[{"token": r["token_str"], "probability": r["score"], "sequence": r["sequence"]} for r in masked]
            for masked in results]


def repetition(token_ids: list[int]) -> dict[str, float]:
    """How repetitive a sample is: the share of its 4-grams seen earlier in it, and distinct-2 (distinct
    bigrams over bigrams). A model that "only repeats the input" has a high first and a low second."""
    fourgrams = [tuple(token_ids[i : i + 4]) for i in range(len(token_ids) - 3)]
    bigrams = [tuple(token_ids[i : i + 2]) for i in range(len(token_ids) - 1)]
    repeated = len(fourgrams) - len(set(fourgrams))
    return {"repeated_4grams": repeated / len(fourgrams) if fourgrams else 0.0,
            "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 1.0}


def generate(pipe, prompt: str, *, max_new_tokens: int = 50, temperature: float = SAMPLING["temperature"],
             top_k: int = SAMPLING["top_k"], top_p: float = SAMPLING["top_p"],
             repetition_penalty: float = SAMPLING["repetition_penalty"], num_return_sequences: int = 1,
             seed: int | None = 0) -> list[dict]:
    """Continuations of `prompt` (temperature 0 = greedy), each with the model's own probability of every
    new token (before temperature and truncation), their geometric mean and repetition measures.
    `seed=None` samples from the current random state instead of seeding every generator."""
    import torch
    from transformers import set_seed

    if not prompt:
        raise ValueError("the prompt is empty: give the text to continue")
    if seed is not None:
        set_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences, return_tensors=True,
                  repetition_penalty=repetition_penalty, do_sample=temperature > 0)
    if temperature > 0:
        kwargs.update(temperature=temperature, top_k=top_k, top_p=top_p)
    n_prompt = pipe.preprocess(prompt)["input_ids"].shape[-1]  # the pipeline's own tokenisation
    samples = []
    for output in pipe(prompt, **kwargs):
        ids = [int(i) for i in output["generated_token_ids"]]
        with torch.no_grad():
            logits = pipe.model(torch.tensor([ids], device=pipe.model.device)).logits[0].float()
        logprobs = logits[:-1].log_softmax(-1).gather(-1, torch.tensor(ids[1:], device=logits.device)[:, None])[:, 0]
        new = logprobs[n_prompt - 1 :].tolist()
        new_ids = ids[n_prompt:]
        samples.append({
            "text": pipe.tokenizer.decode(new_ids, skip_special_tokens=True),
            "tokens": [{"token": pipe.tokenizer.decode([i]), "probability": math.exp(lp)} for i, lp in zip(new_ids, new)],
            "mean_token_probability": math.exp(sum(new) / len(new)) if new else None,
            **repetition(new_ids),
        })
    return samples


def _fill_mask_command(args) -> int:
    try:
        pipe = load_pipeline("fill-mask", args.model)
        results = fill_mask(pipe, args.text, args.top_k)
    except ValueError as err:
        return print_error(err)
    if args.json:
        print(json.dumps({"model": args.model, "text": args.text, "masks": results}, ensure_ascii=False))
        return 0
    for n, predictions in enumerate(results, 1):
        if len(results) > 1:
            print(f"mask {n}:")
        for rank, p in enumerate(predictions, 1):
            print(f"  {rank}. {p['token']!r:<20} {p['probability']:<9.3g} {p['sequence']}")
    return 0


def _generate_command(args) -> int:
    try:
        pipe = load_pipeline("text-generation", args.model)
        samples = generate(pipe, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                           num_return_sequences=args.num_return_sequences, seed=args.seed)
    except ValueError as err:
        return print_error(err)
    if args.json:
        print(json.dumps({"model": args.model, "prompt": args.prompt, "samples": samples}, ensure_ascii=False))
        return 0
    for n, s in enumerate(samples, 1):
        mean = "-" if s["mean_token_probability"] is None else f"{s['mean_token_probability']:.3f}"
        print(f"[{n}] {args.prompt}{s['text']}")
        print(f"    {len(s['tokens'])} tokens, mean token probability {mean}, repeated 4-grams "
              f"{s['repeated_4grams']:.0%}, distinct-2 {s['distinct_2']:.2f}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fill-mask", help="top predictions of a masked LM for each [MASK] in a text",
        description="Top predictions of a masked LM (a local folder or a Hub id) for each [MASK] in a text, "
                    "through transformers.pipeline('fill-mask').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="a model folder (e.g. outputs/microbert-cpu) or a Hub id")
    parser.add_argument("text", help=f"text with {MASK} where a word is missing (any tokenizer)")
    parser.add_argument("--top_k", type=int, default=5, help="predictions per mask")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_fill_mask_command)

    parser = subparsers.add_parser(
        "generate", help="sample continuations of a prompt from a causal LM",
        description="Continuations of a prompt from a causal LM (a local folder or a Hub id), through "
                    "transformers.pipeline('text-generation'), with each token's probability.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="a model folder (e.g. outputs/microgpt-cpu) or a Hub id")
    parser.add_argument("prompt", help="the text to continue")
    parser.add_argument("--max_new_tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=SAMPLING["temperature"], help="0 = greedy")
    parser.add_argument("--top_k", type=int, default=SAMPLING["top_k"])
    parser.add_argument("--top_p", type=float, default=SAMPLING["top_p"])
    parser.add_argument("--repetition_penalty", type=float, default=SAMPLING["repetition_penalty"])
    parser.add_argument("--num_return_sequences", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_generate_command)
