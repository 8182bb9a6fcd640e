"""What the hardware can do: the GPUs we know (one table), precision, and peak FLOP/s for MFU."""

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    name: str  # as torch.cuda.get_device_name() reports it
    matches: str  # a device name containing this is this GPU (first row that matches wins)
    compute_capability: tuple[int, int]
    memory_bytes: int
    peak_flops: dict[str, float]  # dense tensor FLOP/s (no sparsity) by precision, from the vendor's data sheet


# every GPU hfmicro knows: `hfmicro estimate --gpu <key>` plans for it, a run on it reports MFU
GPUS = {
    "h200": GpuSpec("NVIDIA H200", "H200", (9, 0), 141 * 10**9,
                    {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    "h100": GpuSpec("NVIDIA H100 80GB HBM3", "H100", (9, 0), 80 * 10**9,  # SXM; the PCIe card is ~756e12
                    {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    "a100": GpuSpec("NVIDIA A100-SXM4-80GB", "A100", (8, 0), 80 * 10**9,
                    {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    "a10": GpuSpec("NVIDIA A10", "A10", (8, 6), 24 * 10**9, {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}),
    "t4": GpuSpec("Tesla T4", "T4", (7, 5), 16 * 10**9, {"fp16": 65e12, "fp32": 8.1e12}),
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
        spec = next((spec for spec in GPUS.values() if spec.matches in self.name), None)
        return spec.peak_flops.get(precision) if spec else None

    @classmethod
    def of(cls, gpu: str) -> "Hardware":
        """A GPU of the table (`GPUS` key), for planning a run on a machine one does not have."""
        spec = GPUS[gpu]
        return cls("cuda", spec.name, spec.compute_capability, spec.memory_bytes)


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
    import torch

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
