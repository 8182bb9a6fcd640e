"""The MLM collator whose masks can be replayed: exact resume needs the same masks after a restart.

`DataCollatorForLanguageModeling` draws masks from a generator whose state lives in the process (and
in each dataloader worker), which no checkpoint records, and which runs one batch ahead of training
because accelerate prefetches. Here each batch seeds its own generator from (seed, the batch's tokens):
the masks are a pure function of the data, so a resumed run, another rank or another worker draws
exactly the masks an uninterrupted run drew. Shuffling makes every epoch's batches, and so its masks,
new; a fixed evaluation set gets the same masks at every evaluation.
"""

import hashlib
from dataclasses import dataclass

import torch
from transformers import DataCollatorForLanguageModeling


def batch_seed(seed: int, input_ids: torch.Tensor) -> int:
    """A 63-bit seed from the seed and the batch's token ids (shape and values)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr((seed, tuple(input_ids.shape))).encode())
    digest.update(input_ids.to(torch.int64).cpu().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


@dataclass
class ReplayableMaskingCollator(DataCollatorForLanguageModeling):
    """80/10/10 masking exactly as transformers does it, seeded per batch by `batch_seed`."""

    masking_seed: int = 0

    def torch_mask_tokens(self, inputs, special_tokens_mask=None, offset_mapping=None):
        self.generator = torch.Generator().manual_seed(batch_seed(self.masking_seed, inputs))
        return super().torch_mask_tokens(inputs, special_tokens_mask=special_tokens_mask, offset_mapping=offset_mapping)
