"""Measure the MLM collator: the replayable one (masks seeded per batch from its tokens, for exact
resume) against transformers' DataCollatorForLanguageModeling, in the same run.

Usage (from the repository root; ~20 s, run it alone):

    python bench/bench_collator.py
"""

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    from hfmicro.data.collator import ReplayableMaskingCollator
    from hfmicro.training.hardware import machine_description

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(REPO / "tokenizers" / "microbert-8k"))
    print(f"{machine_description()}, torch {torch.__version__}")
    print(f"{'batch':>10} | {'stock ms':>9} | {'replayable ms':>13} | ratio")
    for batch, length in ((32, 128), (256, 512)):
        examples = [{"input_ids": torch.randint(5, len(tokenizer), (length,)).tolist()} for _ in range(batch)]
        collators = {
            "stock": DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, pad_to_multiple_of=8),
            "replayable": ReplayableMaskingCollator(tokenizer, mlm_probability=0.15, pad_to_multiple_of=8),
        }
        times = {name: [] for name in collators}
        for _ in range(5 if batch > 64 else 20):  # alternating rounds, median
            for name, collator in collators.items():
                start = time.perf_counter()
                collator(examples)
                times[name].append(time.perf_counter() - start)
        stock, ours = (sorted(t)[len(t) // 2] * 1e3 for t in times.values())
        print(f"{batch:>4} x {length:<3} | {stock:9.2f} | {ours:13.2f} | {ours / stock:.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
