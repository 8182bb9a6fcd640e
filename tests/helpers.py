"""What several test modules share: tiny models and batches, real prose, a tokenizer trainer, launching a
recipe, and comparisons whose tolerance follows floating-point rounding. Fixtures live in conftest.py."""

import torch


def assert_close_to_rounding(actual: torch.Tensor, expected: torch.Tensor, ulps: int = 64, msg=None) -> None:
    """`actual` equals `expected` up to the rounding of computing the same value in another order (chunks,
    fused kernels, another CPU's matmul kernels): `ulps` units of the dtype's rounding (its machine epsilon),
    relative to each element and to the largest magnitude in `expected`. A fixed absolute tolerance is both
    too tight for large values (a gradient of ~0.2 came out 1.4e-7 off on one CPU, against atol=1e-7) and
    too loose for small ones; a real bug is off by a share of the value itself, far beyond this."""
    eps = torch.finfo(expected.dtype).eps
    scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale, msg=msg)
