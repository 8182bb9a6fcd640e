"""What a trained model can do, in numbers: a fixed fill-mask probe set against the unigram baseline,
and the short demos the recipes print (fill-mask top-5, a generated continuation): `DEMOS`, one per
pipeline task, says what a run shows of its model during training, at the end and in its model card."""

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..data.packing import token_ids
from ..data.scripts import UNSPACED, is_unspaced

DEMO_SENTENCES = [
    "The function returns a [MASK] of the values.",
    "An exception is raised if the [MASK] does not exist.",
    "This module provides access to the [MASK] system.",
]
DEMO_PROMPTS = ["The module provides", "If the value is"]


@dataclass
class ProbeItem:
    text: str  # the sentence with one word replaced by the mask token
    answer_id: int  # the token id of the masked word (with its leading space)
    answer: str


def token_frequencies(tokenizer, texts) -> Counter:
    counts = np.zeros(0, dtype=np.int64)
    for text in texts:  # one at a time, each in pieces: a 50 MB document is ~11M tokens
        new = np.bincount(token_ids([text], tokenizer)[0], minlength=len(counts))
        new[: len(counts)] += counts
        counts = new
    return Counter({int(i): int(counts[i]) for i in np.flatnonzero(counts)})


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")


def sentences_of(document: str) -> list[str]:
    """Sentences, ended by . ! ? and a space, or by 。！？ (no space follows them in Chinese and Japanese)."""
    return [s for s in _SENTENCE_END.split(" ".join(document.split())) if s]


def _candidates(tokenizer, sentence: str) -> tuple[list[tuple[int, int, int]], bool]:
    """(start, end, token id) of the units of `sentence` that can be masked, and whether it is long enough
    to be a probe: a whole word that is one token (with its leading space) between spaces, or, in text
    without spaces, a token made only of Chinese or Japanese characters (never part of one character)."""
    if not is_unspaced(sentence):
        words = sentence.split(" ")
        found, position = [], 0
        for i, word in enumerate(words):
            start, position = position, position + len(word) + 1
            if i == 0 or not word.isalpha():
                continue
            ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                found.append((start, start + len(word), ids[0]))
        return found, 6 <= len(words) <= 40
    enc = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    spans = enc["offset_mapping"]
    found = []
    for i, (token_id, (start, end)) in enumerate(zip(enc["input_ids"], spans)):
        shared = (i and spans[i - 1][1] > start) or (i + 1 < len(spans) and spans[i + 1][0] < end)
        piece = sentence[start:end]
        if i and piece and not shared and all(UNSPACED.match(c) for c in piece):
            found.append((start, end, token_id))
    return found, 10 <= len(sentence) <= 120


def build_probe_set(tokenizer, train_texts, validation_texts, size: int = 200, seed: int = 0,
                    exclude_top: int = 100) -> tuple[list[ProbeItem], Counter]:
    """`size` validation sentences, each with one *content* unit masked: a unit (a word, or in Chinese and
    Japanese a token of their characters) that is a single token, seen in training and not among the
    `exclude_top` most frequent training tokens."""
    counts = token_frequencies(tokenizer, train_texts)
    frequent = {token for token, _ in counts.most_common(exclude_top)}
    rng = random.Random(seed)
    items = []
    for document in validation_texts:
        for sentence in sentences_of(document):
            found, long_enough = _candidates(tokenizer, sentence)
            candidates = [c for c in found if c[2] not in frequent and counts[c[2]] > 0] if long_enough else []
            if not candidates:
                continue
            start, end, token_id = rng.choice(candidates)
            items.append(ProbeItem(sentence[:start] + tokenizer.mask_token + sentence[end:], token_id, sentence[start:end]))
            if len(items) == size:
                return items, counts
    return items, counts


def demo_sentences(tokenizer, texts, n: int = 3, seed: int = 0) -> list[str]:
    """`n` sentences of `texts` (the run's validation data) with one unit masked, for the fill-mask demo."""
    rng, out = random.Random(seed), []
    for document in texts:
        for sentence in sentences_of(document):
            found, long_enough = _candidates(tokenizer, sentence)
            if long_enough and found:
                start, end, _ = rng.choice(found)
                out.append(sentence[:start] + tokenizer.mask_token + sentence[end:])
                if len(out) == n:
                    return out
    return out


def demo_prompts(texts, n: int = 2) -> list[str]:
    """The opening of `n` sentences of `texts`: four words, or ten characters of text without spaces."""
    out = []
    for document in texts:
        for sentence in sentences_of(document):
            prompt = sentence[:10] if is_unspaced(sentence) else " ".join(sentence.split(" ")[:4])
            if len(prompt) >= 8:
                out.append(prompt)
                if len(out) == n:
                    return out
    return out


@torch.no_grad()
def score_probe(model, tokenizer, items: list[ProbeItem], batch_size: int = 32) -> dict[str, float]:
    """Top-1 / top-5 accuracy of the model at the masked position."""
    device = next(model.parameters()).device
    top1 = top5 = 0
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        enc = tokenizer([it.text for it in batch], return_tensors="pt", padding=True, truncation=True,
                        max_length=model.config.max_position_embeddings).to(device)
        enc.pop("token_type_ids", None)
        logits = model(**enc).logits  # (B, T, V)
        rows, cols = (enc["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
        top = logits[rows, cols].topk(5, dim=-1).indices  # (B, 5)
        answers = torch.tensor([batch[r].answer_id for r in rows.tolist()], device=device)
        top1 += (top[:, 0] == answers).sum().item()
        top5 += (top == answers[:, None]).any(-1).sum().item()
    return {"top1": top1 / max(len(items), 1), "top5": top5 / max(len(items), 1)}


def score_unigram(items: list[ProbeItem], counts: Counter, special_ids) -> dict[str, float]:
    """The baseline a model stuck on the unigram plateau reaches: always the most frequent tokens."""
    ranked = [t for t, _ in counts.most_common(len(special_ids) + 5) if t not in set(special_ids)][:5]
    top1 = sum(it.answer_id == ranked[0] for it in items)
    top5 = sum(it.answer_id in ranked for it in items)
    return {"top1": top1 / max(len(items), 1), "top5": top5 / max(len(items), 1)}


def _demo_device(model) -> list:
    device = next(model.parameters()).device
    return [device] if device.type == "cuda" else []


def fill_mask_demo(model, tokenizer, sentences=DEMO_SENTENCES, k: int = 5) -> str:
    """Each sentence with the `k` likeliest fillings of its mask, through `pipeline("fill-mask")` (what
    the model card tells users to run)."""
    from transformers import pipeline

    from ..pipelines import fill_mask

    pipe = pipeline("fill-mask", model=model, tokenizer=tokenizer, device=next(model.parameters()).device)
    lines = []
    for sentence in sentences:
        guesses = ", ".join(f"{g['token']!r} {g['probability']:.3f}" for g in fill_mask(pipe, sentence, top_k=k)[0])
        lines.append(f"  {sentence}  ->  {guesses}")
    return "\n".join(lines)


def generation_demo(model, tokenizer, prompts=DEMO_PROMPTS, max_new_tokens: int = 30, seed: int = 0) -> str:
    """A sampled continuation of each prompt through `pipeline("text-generation")`, at hfmicro's default
    sampling settings, with its repetition measures. Seeded on a forked random state: the demo is the
    same at every evaluation for the same weights, and training's random stream is left as it was."""
    from transformers import pipeline

    from ..pipelines import generate

    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, device=next(model.parameters()).device)
    lines = []
    with torch.random.fork_rng(devices=_demo_device(model)):
        torch.manual_seed(seed)
        for prompt in prompts:
            sample = generate(pipe, prompt, max_new_tokens=max_new_tokens, seed=None)[0]
            lines.append(f"  {prompt + sample['text']!r}  (repeated 4-grams {sample['repeated_4grams']:.0%}, "
                         f"distinct-2 {sample['distinct_2']:.2f})")
    return "\n".join(lines)


def fill_mask_probe(model, tokenizer, data_args) -> tuple[dict, str]:
    """The fill-mask probe on the run's own corpus (`build_probe_set`) against the unigram baseline: the scores
    for eval_results.json and the line the run prints."""
    from ..data import iter_texts

    kwargs = dict(dataset_config=data_args.dataset_config, text_column=data_args.text_column,
                  txt_mode=data_args.txt_mode, validation_split_percentage=data_args.validation_split_percentage)
    train_texts = iter_texts(data_args.dataset, "train", max_bytes=5_000_000, **kwargs)
    validation_texts = iter_texts(data_args.dataset, "validation", max_bytes=5_000_000, **kwargs)
    items, counts = build_probe_set(tokenizer, train_texts, validation_texts)
    ours = score_probe(model, tokenizer, items)
    unigram = score_unigram(items, counts, tokenizer.all_special_ids)
    scores = {"probe_size": len(items), "probe_top1": ours["top1"], "probe_top5": ours["top5"],
              "unigram_top1": unigram["top1"], "unigram_top5": unigram["top5"]}
    line = (f"fill-mask probe: top-1 {ours['top1']:.1%}, top-5 {ours['top5']:.1%} (unigram baseline top-1 "
            f"{unigram['top1']:.1%}, top-5 {unigram['top5']:.1%}; {len(items)} sentences)")
    return scores, line


@dataclass(frozen=True)
class Demo:
    """What a run shows of a model of one pipeline task: during training, at the end, and in its model card."""

    name: str  # "fill-mask demo"
    shipped: list[str]  # the inputs for the builtin corpus (or when the run's text offers none)
    find: Callable  # (tokenizer, texts) -> inputs from the run's own validation text
    show: Callable  # (model, tokenizer, inputs, **training) -> the demo's text
    training: dict  # `show`'s keyword arguments during training (shorter than at the end)
    usage: str  # the model card's example; {name} is the model's id, {mask} the tokenizer's mask token
    final_scores: Callable | None = None  # (model, tokenizer, data_args) -> (scores, line), after training


DEMOS = {
    "fill-mask": Demo("fill-mask demo", DEMO_SENTENCES, lambda tokenizer, texts: demo_sentences(tokenizer, texts, 3),
                      fill_mask_demo, {},
                      'fill = pipeline("fill-mask", model="{name}", trust_remote_code=True)\n'
                      'fill("The function returns a {mask} of the values.")', fill_mask_probe),
    "text-generation": Demo("generation demo", DEMO_PROMPTS, lambda tokenizer, texts: demo_prompts(texts, 2),
                            generation_demo, {"max_new_tokens": 20},
                            'generate = pipeline("text-generation", model="{name}", trust_remote_code=True)\n'
                            'generate("The module provides", max_new_tokens=40, do_sample=True, top_p=0.95)'),
}
