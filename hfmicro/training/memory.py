"""The memory a training step needs on one device: the one model behind `hfmicro estimate` and
`--auto_batch_size`.

weights + gradients + AdamW state (fp32 master weights: 16 bytes a parameter) + DDP's gradient buckets
+ activations + the loss's logits at the step's peak + the CUDA context, and a margin. Activations are not
guessed from a formula: the recipe's model runs one forward pass of 1 and of 2 sequences of the recipe's
length on this machine's CPU (with autocast for bf16/fp16 recipes, gradient checkpointing and the sparse
MLM head as configured) while a `saved_tensors_hooks` pair adds up every tensor autograd keeps for the
backward pass (each storage once, parameters excluded). The difference is the cost of one sequence; the
rest is the batch-independent part (autocast's low-precision weight copies). Attention runs through the
same SDPA kernels as in training, whose saved state grows linearly with the sequence length, as
FlashAttention's does on GPUs.
"""

from dataclasses import dataclass

from ..models import MicroGPTConfig, enable_activation_checkpointing
from ..models.microgpt.modeling_microgpt import loss_chunk_rows
from ..objectives import Objective
from ..presets import build_model
from .hardware import Hardware

MARGIN = 0.10  # of the total: allocator fragmentation, the backward pass's largest temporary, workspaces
CUDA_CONTEXT = 0.5e9  # bytes the CUDA context and kernels take on every GPU before any tensor


def saved_activation_bytes(model, batch: int, seq_len: int, objective: Objective, mlm_probability: float,
                           autocast_dtype=None) -> int:
    """Bytes autograd saves for backward in one forward pass of `batch` random sequences (what a training
    step holds at the end of its forward pass), each storage counted once, parameters excluded."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (batch, seq_len), generator=generator)
    labels = ids.clone()
    if objective.masked:
        labels[torch.rand(batch, seq_len, generator=generator) >= mlm_probability] = -100
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and storage.device.type != "meta":
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(input_ids=ids, labels=labels).loss
    del loss
    return sum(seen.values())


@dataclass(frozen=True)
class ActivationCost:
    per_sequence: float  # bytes saved for backward per sequence of the recipe's length
    fixed: float  # batch-independent (autocast's low-precision weight copies)

    def at(self, batch: int) -> float:
        return self.per_sequence * batch + self.fixed


def activation_cost(config, seq_len: int, objective: Objective, mlm_probability: float, precision: str,
                    gradient_checkpointing: bool) -> ActivationCost:
    """Activation memory of a training step, measured on the model itself (see the module docstring)."""
    import torch

    model = build_model(config)
    dtype = torch.bfloat16 if precision in ("bf16", "fp16") else None  # fp16 takes as many bytes as bf16

    def per_batch(b: int) -> int:
        return saved_activation_bytes(model, b, seq_len, objective, mlm_probability, dtype)

    one, two = per_batch(1), per_batch(2)
    per_sequence, fixed = two - one, 2 * one - two
    if gradient_checkpointing:
        layer = per_sequence / config.num_hidden_layers  # one layer is recomputed at a time during backward
        enable_activation_checkpointing(model)
        one, two = per_batch(1), per_batch(2)
        per_sequence, fixed = two - one + layer, 2 * one - two
    return ActivationCost(per_sequence, max(fixed, 0))


def logits_bytes(config, objective: Objective, batch: int, seq_len: int, mlm_probability: float) -> float:
    """The loss's fp32 logits and their gradient, alive with every saved activation at the step's peak."""
    rows = batch * seq_len
    if objective.masked and getattr(config, "sparse_prediction", False):
        rows *= mlm_probability  # MicroBERT's sparse head scores the masked positions only
    if isinstance(config, MicroGPTConfig):
        rows = min(rows, loss_chunk_rows(config.vocab_size))  # its training loss keeps one chunk (LinearCrossEntropy)
    return 2 * 4 * rows * config.vocab_size


def training_memory(params: int, config, objective: Objective, batch: int, seq_len: int, mlm_probability: float,
                    activations: ActivationCost, num_gpus: int = 1, on_gpu: bool = True) -> dict[str, float]:
    """Bytes per device, by part, margin included (their sum is the total)."""
    memory = {
        "weights": 4 * params,  # fp32 master weights (bf16/fp16 are autocast: the weights stay fp32)
        "gradients": 4 * params,
        "optimizer": 8 * params,  # AdamW: two fp32 moments per parameter
    }
    if num_gpus > 1:
        memory["ddp_buckets"] = 4 * params  # DDP's gradient buckets: a second copy of the gradients
    memory["activations"] = activations.at(batch)
    memory["logits"] = logits_bytes(config, objective, batch, seq_len, mlm_probability)
    if on_gpu:
        memory["cuda_context"] = CUDA_CONTEXT
    memory["margin"] = MARGIN * sum(memory.values())
    return memory


def fit_batch_size(hardware: Hardware, config, objective: Objective, seq_len: int, mlm_probability: float,
                   precision: str, gradient_checkpointing: bool, num_gpus: int = 1, max_batch: int = 512) -> int:
    """The largest per-device batch, a power of two up to `max_batch`, whose training memory (as `hfmicro
    estimate` counts it) fits the GPU. Raises ValueError when not even one sequence fits."""
    import torch

    with torch.device("meta"):
        params = build_model(config).num_parameters()
    activations = activation_cost(config, seq_len, objective, mlm_probability, precision, gradient_checkpointing)

    def fits(batch: int) -> bool:
        parts = training_memory(params, config, objective, batch, seq_len, mlm_probability, activations, num_gpus)
        return sum(parts.values()) <= hardware.memory_bytes

    if not fits(1):
        raise ValueError(f"auto_batch_size: the model does not fit in {hardware.name} memory even at batch 1; lower "
                         "max_seq_length, use --gradient_checkpointing, or shard it with FSDP")
    batch = 1
    while batch * 2 <= max_batch and fits(batch * 2):
        batch *= 2
    return batch
