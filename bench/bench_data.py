"""Measure the corpus pipeline on this machine: tokenise+pack throughput and cached-load time.

Usage (from the repository root; ~2 min on 2 cores, run it alone: tokenisation uses every core):

    python bench/bench_data.py [--mb 100]

Two corpora: `builtin` (≈1.1 MB, MLM with tokenizers/microbert-8k) and a generated local JSONL
file of `--mb` MB (CLM with tokenizers/microgpt-8k) whose documents are three random paragraphs of
the built-in corpus each (seeded, so every run writes the same file). Each is prepared twice in an
empty temporary cache: the first call reads, tokenises, packs and writes the cache entry; the
second loads that entry (it still hashes the source files and the tokenizer to find it).
"""

import argparse
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write_corpus(path: Path, n_bytes: int) -> int:
    from hfmicro.data.builtin import builtin_documents

    paragraphs = [p for doc in builtin_documents() for p in doc.split("\n\n")]
    rng, written = random.Random(0), 0
    with open(path, "w", encoding="utf-8") as out:
        while written < n_bytes:
            line = json.dumps({"text": "\n\n".join(rng.sample(paragraphs, 3))}, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
    return written


def measure(name: str, args, tokenizer, objective: str) -> dict:
    from hfmicro.data import DataSummary, load_lm_datasets

    cold, warm = DataSummary(), DataSummary()
    start = time.perf_counter()
    load_lm_datasets(args, tokenizer, objective, summary=cold)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    splits = load_lm_datasets(args, tokenizer, objective, summary=warm)
    load_s = time.perf_counter() - start
    assert (cold.cache, warm.cache) == ("miss", "hit")
    tokens = sum(s.tokens for s in cold.splits.values())
    return dict(
        name=name, documents=sum(s.documents for s in cold.splits.values()), tokens=tokens,
        blocks=sum(len(d) for d in splits.values()), build_s=build_s, load_s=load_s,
    )


def main(mb: float) -> None:
    import datasets
    from transformers import AutoTokenizer

    from hfmicro.data import DataArguments

    datasets.disable_progress_bars()
    logging.getLogger("hfmicro.data").setLevel(logging.WARNING)
    bert = AutoTokenizer.from_pretrained(REPO / "tokenizers" / "microbert-8k")
    gpt = AutoTokenizer.from_pretrained(REPO / "tokenizers" / "microgpt-8k")
    from hfmicro.training.hardware import machine_description

    print(f"machine: {machine_description()}")
    print(f"datasets {datasets.__version__}, max_seq_length 128, 1 tokenising process\n")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HFMICRO_CACHE"] = os.path.join(tmp, "cache")
        corpus = Path(tmp) / "corpus.jsonl"
        start = time.perf_counter()
        size = write_corpus(corpus, int(mb * 1e6))
        print(f"wrote {size / 1e6:.0f} MB local corpus in {time.perf_counter() - start:.1f} s")
        rows = [
            measure("builtin, mlm, microbert-8k", DataArguments(dataset="builtin"), bert, "mlm"),
            measure(f"{size / 1e6:.0f} MB jsonl, clm, microgpt-8k", DataArguments(dataset=str(corpus)), gpt, "clm"),
        ]

    header = ("corpus", "docs", "tokens", "blocks", "build s", "tokens/s", "cached s", "speed-up")
    print("\n{:<32} {:>9} {:>12} {:>9} {:>8} {:>10} {:>9} {:>9}".format(*header))
    for r in rows:
        print(
            f"{r['name']:<32} {r['documents']:>9,} {r['tokens']:>12,} {r['blocks']:>9,} {r['build_s']:>8.1f} "
            f"{r['tokens'] / r['build_s']:>10,.0f} {r['load_s']:>9.2f} {r['build_s'] / r['load_s']:>8.0f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100, help="size of the generated local corpus (default 100)")
    main(parser.parse_args().mb)
