"""`hfmicro fill-mask` and `hfmicro generate`: try any masked or causal LM, a local folder or a Hub id,
through `transformers.pipeline`, with the model's probabilities shown.

    hfmicro fill-mask outputs/microbert-cpu "The function returns a [MASK] of the values." --top_k 5
    hfmicro generate outputs/microgpt-cpu "The module provides" --max_new_tokens 40 --num_return_sequences 3

The mask may be written `[MASK]` whatever the tokenizer's own mask token is (`<mask>` for RoBERTa-style).
"""

import os

from .errors import first_line
from .pipelines import MASK, SAMPLING, fill_mask, generate
from .verbs import add_verb, answer


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


def _fill_mask_command(args) -> int:
    def predictions() -> dict:
        masks = fill_mask(load_pipeline("fill-mask", args.model), args.text, args.top_k)
        return {"model": args.model, "text": args.text, "masks": masks}

    def describe(result) -> str:
        masks, lines = result["masks"], []
        for n, predictions in enumerate(masks, 1):
            lines += [f"mask {n}:"] if len(masks) > 1 else []
            lines += [f"  {rank}. {p['token']!r:<20} {p['probability']:<9.3g} {p['sequence']}"
                      for rank, p in enumerate(predictions, 1)]
        return "\n".join(lines)

    return answer(args, predictions, describe)


def _generate_command(args) -> int:
    def continuations() -> dict:
        samples = generate(load_pipeline("text-generation", args.model), args.prompt, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           repetition_penalty=args.repetition_penalty, num_return_sequences=args.num_return_sequences,
                           seed=args.seed)
        return {"model": args.model, "prompt": args.prompt, "samples": samples}

    def describe(result) -> str:
        lines = []
        for n, s in enumerate(result["samples"], 1):
            mean = "-" if s["mean_token_probability"] is None else f"{s['mean_token_probability']:.3f}"
            lines += [f"[{n}] {args.prompt}{s['text']}",
                      f"    {len(s['tokens'])} tokens, mean token probability {mean}, repeated 4-grams "
                      f"{s['repeated_4grams']:.0%}, distinct-2 {s['distinct_2']:.2f}"]
        return "\n".join(lines)

    return answer(args, continuations, describe)


def register(subparsers) -> None:
    parser = add_verb(subparsers, "fill-mask", _fill_mask_command, "top predictions of a masked LM for each [MASK] in a text",
                      "Top predictions of a masked LM (a local folder or a Hub id) for each [MASK] in a text, through "
                      "transformers.pipeline('fill-mask').")
    parser.add_argument("model", help="a model folder (e.g. outputs/microbert-cpu) or a Hub id")
    parser.add_argument("text", help=f"text with {MASK} where a word is missing (any tokenizer)")
    parser.add_argument("--top_k", type=int, default=5, help="predictions per mask")

    parser = add_verb(subparsers, "generate", _generate_command, "sample continuations of a prompt from a causal LM",
                      "Continuations of a prompt from a causal LM (a local folder or a Hub id), through "
                      "transformers.pipeline('text-generation'), with each token's probability.")
    parser.add_argument("model", help="a model folder (e.g. outputs/microgpt-cpu) or a Hub id")
    parser.add_argument("prompt", help="the text to continue")
    parser.add_argument("--max_new_tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=SAMPLING["temperature"], help="0 = greedy")
    parser.add_argument("--top_k", type=int, default=SAMPLING["top_k"])
    parser.add_argument("--top_p", type=float, default=SAMPLING["top_p"])
    parser.add_argument("--repetition_penalty", type=float, default=SAMPLING["repetition_penalty"])
    parser.add_argument("--num_return_sequences", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
