"""Measure BPE training throughput and the fertility of the shipped tokenizers on this machine.

Usage (from the repository root; ~1 min on 2 cores, run it alone: it uses every core):

    python bench/bench_tokenizer.py [--mb 50]

Throughput needs more text than the 1 MB built-in corpus, so the bench writes a corpus file from
the Python sources installed here (stdlib, then transformers; code, not prose) and trains an 8k
`gpt` tokenizer on it through the normal path (hfmicro.data.iter_texts -> hfmicro.bpe.train_bpe).
Fertility is measured on the built-in corpus's validation split and on a slice of that code corpus
the training did not see.
"""

import argparse
import os
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["microbert-8k", "microgpt-8k"]


def _py_files(root: Path):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "site-packages")  # the stdlib without installed packages
        yield from (Path(folder) / name for name in sorted(files) if name.endswith(".py"))


def write_code_corpus(path: Path, n_bytes: int) -> int:
    """Concatenate installed .py files (in a fixed order, so every run gets the same text) up to n_bytes."""
    import transformers

    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for root in (Path(sysconfig.get_paths()["stdlib"]), Path(transformers.__file__).parent):
            for source in _py_files(root):
                text = source.read_text(encoding="utf-8", errors="ignore") + "\n\n"
                out.write(text)
                written += len(text.encode("utf-8"))
                if written >= n_bytes:
                    return written
    return written


def main(mb: float) -> None:
    from transformers import AutoTokenizer

    from hfmicro.bpe import fertility, train_bpe
    from hfmicro.data import iter_texts

    from hfmicro.training.hardware import machine_description

    print(f"machine: {machine_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "code.txt"
        size = write_code_corpus(corpus, int(mb * 1e6 * 1.05))  # the 5 % hash validation split is not trained on

        start = time.perf_counter()
        n_read = sum(len(t.encode("utf-8")) for t in iter_texts(str(corpus), "train"))
        read_s = time.perf_counter() - start

        rows = []
        for name, dataset in [("builtin (prose)", "builtin"), (f"code corpus ({size / 1e6:.0f} MB file)", str(corpus))]:
            report = train_bpe(iter_texts(dataset, "train"), vocab_size=8000, model_type="gpt",
                               output_dir=os.path.join(tmp, f"tok-{len(rows)}"))
            rows.append((name, report["bytes_seen"] / 1e6, report["seconds"], report["mb_per_s"]))
        rows.append(("(reading the code file only)", n_read / 1e6, read_s, n_read / 1e6 / read_s))

        print("\nTraining throughput (8k vocab, gpt, min_frequency 2; seconds include reading via iter_texts)")
        print(f"| {'corpus':<28} | {'MB':>6} | {'seconds':>7} | {'MB/s':>6} |")
        print(f"|{'-' * 30}|{'-' * 8}|{'-' * 9}|{'-' * 8}|")
        for name, n_mb, seconds, rate in rows:
            print(f"| {name:<28} | {n_mb:6.1f} | {seconds:7.1f} | {rate:6.1f} |")

        heldout = {
            "builtin validation": list(iter_texts("builtin", "validation")),
            "code validation (2 MB)": list(iter_texts(str(corpus), "validation", max_bytes=2_000_000)),
        }
        print("\nFertility of the shipped tokenizers (tokens per whitespace word / per character)")
        print(f"| {'tokenizer':<14} | {'held-out text':<24} | {'docs':>5} | {'tok/word':>8} | {'tok/char':>8} |")
        print(f"|{'-' * 16}|{'-' * 26}|{'-' * 7}|{'-' * 10}|{'-' * 10}|")
        for name in SHIPPED:
            tok = AutoTokenizer.from_pretrained(REPO / "tokenizers" / name)
            for text_name, texts in heldout.items():
                f = fertility(tok, texts)
                print(f"| {name:<14} | {text_name:<24} | {f['docs']:>5} | {f['tokens_per_word']:>8.3f} | "
                      f"{f['tokens_per_char']:>8.3f} |")
    print(f"\nload average after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50, help="size of the code corpus to train on, in MB (default: 50)")
    main(parser.parse_args().mb)
