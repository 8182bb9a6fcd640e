"""What a trained model can do, in numbers: a fixed fill-mask probe set against the unigram baseline,
and the short demos the recipes print (fill-mask top-5, a generated continuation)."""

import random
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ..data.packing import token_ids

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


def build_probe_set(tokenizer, train_texts, validation_texts, size: int = 200, seed: int = 0,
                    exclude_top: int = 100) -> tuple[list[ProbeItem], Counter]:
    """`size` validation sentences, each with one *content* word masked: a word that is a single token
    (with its leading space) and not among the `exclude_top` most frequent training tokens."""
    counts = token_frequencies(tokenizer, train_texts)
    frequent = {token for token, _ in counts.most_common(exclude_top)}
    rng = random.Random(seed)
    items = []
    for document in validation_texts:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(document.split())):
            words = sentence.split(" ")
            if not 6 <= len(words) <= 40:
                continue
            candidates = []
            for i, word in enumerate(words[1:], start=1):
                if not word.isalpha():
                    continue
                ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                if len(ids) == 1 and ids[0] not in frequent and counts[ids[0]] > 0:
                    candidates.append((i, ids[0]))
            if not candidates:
                continue
            i, token_id = rng.choice(candidates)
            masked = " ".join(words[:i] + [tokenizer.mask_token] + words[i + 1 :])
            items.append(ProbeItem(masked, token_id, words[i]))
            if len(items) == size:
                return items, counts
    return items, counts


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


@torch.no_grad()
def fill_mask_demo(model, tokenizer, sentences=DEMO_SENTENCES, k: int = 5) -> str:
    device = next(model.parameters()).device
    lines = []
    for sentence in sentences:
        enc = tokenizer(sentence, return_tensors="pt").to(device)
        enc.pop("token_type_ids", None)
        position = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
        probs = model(**enc).logits[0, position].softmax(-1)
        top = probs.topk(k)
        guesses = ", ".join(
            f"{tokenizer.decode([int(i)])!r} {p:.3f}" for p, i in zip(top.values.tolist(), top.indices)
        )
        lines.append(f"  {sentence}  ->  {guesses}")
    return "\n".join(lines)


@torch.no_grad()
def generation_demo(model, tokenizer, prompts=DEMO_PROMPTS, max_new_tokens: int = 30) -> str:
    device = next(model.parameters()).device
    lines = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt").to(device)
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
            repetition_penalty=1.2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        lines.append(f"  {tokenizer.decode(out[0], skip_special_tokens=True)!r}")
    return "\n".join(lines)
