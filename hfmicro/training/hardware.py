"""What the hardware can do: precision, peak FLOP/s for MFU, and batch size from memory."""

import os
import platform
from dataclasses import dataclass

import torch

# Dense peak tensor throughput (FLOP/s, no sparsity) per GPU from the vendors' data sheets, for MFU.
# Keys are matched as substrings of torch.cuda.get_device_name(); first match wins.
PEAK_FLOPS = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},  # SXM; the PCIe card is ~756e12
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
    "A10": {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12},
    "T4": {"fp16": 65e12, "fp32": 8.1e12},
}


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" or "cpu"
    name: str  # e.g. "NVIDIA A10G" or "cpu"
    compute_capability: tuple[int, int] | None
    memory_bytes: int | None  # per GPU
    cpu_native_bf16: bool = True  # CPU only: bf16 instructions (AVX512-BF16 / AMX / Arm BF16)

    @property
    def supports_bf16(self) -> bool:
        if self.device == "cpu":
            return self.cpu_native_bf16
        # torch.cuda.is_bf16_supported() can say True on a T4 (emulated, slow): trust the architecture
        return self.compute_capability is not None and self.compute_capability >= (8, 0)

    def peak_flops(self, precision: str) -> float | None:
        """Peak FLOP/s of one device at this precision, or None where unknown (CPU, unlisted GPUs)."""
        if self.device != "cuda":
            return None
        for key, table in PEAK_FLOPS.items():
            if key in self.name:
                return table.get(precision)
        return None


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform.processor() is empty on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line naming the machine, for benchmark output: CPU, cores, Python, load average."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"


def cpu_has_native_bf16() -> bool:
    """Without bf16 instructions, bf16 autocast on CPU is emulated: measured 30x slower than fp32 on an
    AVX2-only EPYC. Unknown platforms (no /proc/cpuinfo) are given the benefit of the doubt."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return True
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def detect_hardware(use_cpu: bool = False) -> Hardware:
    if use_cpu or not torch.cuda.is_available():
        return Hardware("cpu", "cpu", None, None, cpu_has_native_bf16())
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return Hardware("cuda", props.name, (props.major, props.minor), props.total_memory)


def resolve_precision(requested: str, hardware: Hardware) -> str:
    """'auto' picks bf16 on GPUs with compute capability >= 8.0, fp16 on older GPUs (T4, V100), fp32 on
    CPU. An explicit request the hardware cannot honour is refused."""
    if requested not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {requested!r}")
    if requested == "auto":
        if hardware.device == "cpu":
            return "fp32"
        return "bf16" if hardware.supports_bf16 else "fp16"
    if requested == "bf16" and hardware.device == "cpu" and not hardware.supports_bf16:
        raise ValueError("precision=bf16: this CPU has no bf16 instructions (AVX512-BF16, AMX or Arm BF16), so "
                         "bf16 would be emulated and many times slower than fp32; use --precision fp32")
    if requested == "bf16" and not hardware.supports_bf16:
        cc = ".".join(map(str, hardware.compute_capability))
        raise ValueError(
            f"precision=bf16 is not supported by {hardware.name} (compute capability {cc}; bf16 needs 8.0 or "
            "newer): use --precision fp16 (mixed precision with loss scaling) or auto"
        )
    if requested == "fp16" and hardware.device == "cpu":
        raise ValueError("precision=fp16 needs a GPU; on CPU use fp32, or bf16 if the CPU supports it")
    return requested


def place_on_hardware(options) -> Hardware:
    """Settle a recipe's device and precision (`options`: the parsed flags, before TrainingArguments is
    built from them). `precision` becomes what `auto` resolved to and sets bf16/fp16; a machine without
    GPUs sets use_cpu explicitly, so transformers sets up CPU DDP (gloo) for several processes and allows
    bf16 autocast on CPU. Explicit --bf16/--fp16 flags must agree with --precision (checked by the
    arguments, which see them as given)."""
    hardware = detect_hardware(options.use_cpu)
    options.use_cpu = hardware.device == "cpu"
    if options.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _init_cpu_process_group(options.ddp_timeout)
    flag = "bf16" if options.bf16 else "fp16" if options.fp16 else None
    if flag is None or options.precision == flag:  # a conflict is reported by the arguments themselves
        options.precision = resolve_precision(options.precision, hardware)
        options.bf16, options.fp16 = options.precision == "bf16", options.precision == "fp16"
    return hardware


def _init_cpu_process_group(timeout_seconds: int) -> None:
    """transformers gives --ddp_timeout to the process group on GPUs only; CPU ranks (gloo) would keep
    torch's 30-minute default. Start the group here with the user's timeout (accelerate reuses it)."""
    import datetime

    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_seconds))


def auto_batch_size(hardware: Hardware, params: int, hidden_size: int, num_layers: int, seq_len: int,
                    vocab_size: int, precision: str, max_batch: int = 512) -> int:
    """A per-device batch size that fits in ~80 % of GPU memory, from a simple activation estimate.

    Memory = weights + grads + AdamW state (16 bytes/param in fp32 master) + activations. Activations per
    token per layer are ~34 * hidden bytes at 16-bit (attention and MLP intermediates, Korthikanti et al.
    2022, without the attention-matrix term that fused SDPA kernels avoid), doubled for fp32, plus the
    logits (4 bytes * vocab per scored token). The result is rounded down to a power of two.
    """
    if hardware.device != "cuda" or hardware.memory_bytes is None:
        return 32
    bytes_per_value = 4 if precision == "fp32" else 2
    per_token = num_layers * 17 * hidden_size * bytes_per_value + 4 * vocab_size * 2
    free = 0.8 * hardware.memory_bytes - 16 * params
    batch = int(free // (per_token * seq_len))
    if batch < 1:
        raise ValueError(f"the model does not fit in {hardware.name} memory; lower max_seq_length or use FSDP")
    power = 1
    while power * 2 <= min(batch, max_batch):
        power *= 2
    return power
