"""What a masked or a causal LM says, through transformers' pipelines: the fill-mask guesses and the sampled
continuations (with the model's own probabilities and repetition measures) that `hfmicro fill-mask` /
`hfmicro generate`, the recipes' demos and the benches show."""

import math

MASK = "[MASK]"
# sampling defaults: a little below temperature 1 and a nucleus cut the long tail of a small model's
# distribution, where its incoherent continuations come from; repetition is then measured, not hidden
SAMPLING = dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0)


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
