"""Peak memory of the three corpus readers on one huge single-line document.

Usage (from the repository root; ~3 min on 2 cores, run it alone):

    python bench/bench_huge_document.py [--mb 50]

Writes a .txt file whose first line is one `--mb` MB document (random words of the built-in
corpus, seeded) followed by the built-in documents one per line, then runs, each in its own
process under `/usr/bin/time -v`, with an empty data cache:

- `hfmicro data stats --tokenizer tokenizers/microbert-8k`
- `python tokenizers/train_bpe.py --vocab_size 8000 --model_type bert`
- `python recipes/pretrain_mlm.py --config recipes/microbert-cpu.yaml --max_steps 5` (prepares the
  corpus, trains, evaluates, scores the probe set, saves)

and prints each command's peak resident memory ("Maximum resident set size") and wall time.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write_corpus(path: Path, n_bytes: int) -> None:
    from hfmicro.data.builtin import builtin_documents

    documents = [" ".join(doc.split()) for doc in builtin_documents()]
    words = " ".join(documents).split()
    rng, out, size = random.Random(0), [], 0
    while size < n_bytes:
        word = rng.choice(words)
        out.append(word)
        size += len(word) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(" ".join(out) + "\n")
        f.writelines(doc + "\n" for doc in documents)


def peak(command: list[str], env: dict) -> tuple[float, str]:
    """(peak RSS in MiB, wall time) of one command under /usr/bin/time -v (which reports KiB)."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", result.stderr).group(1)
    return rss / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "huge.txt"
        write_corpus(corpus, int(args.mb * 1e6))
        env = {**os.environ, "HFMICRO_CACHE": os.path.join(tmp, "cache"), "HF_HUB_OFFLINE": "1"}
        commands = {
            "data stats": ["hfmicro", "data", "stats", "--dataset", str(corpus), "--tokenizer", "tokenizers/microbert-8k"],
            "train_bpe.py": [sys.executable, "tokenizers/train_bpe.py", "--dataset", str(corpus), "--vocab_size", "8000",
                             "--model_type", "bert", "--output_dir", os.path.join(tmp, "bpe")],
            "pretrain_mlm.py": [sys.executable, "recipes/pretrain_mlm.py", "--config", "recipes/microbert-cpu.yaml",
                                "--dataset", str(corpus), "--max_steps", "5", "--eval_steps", "5", "--save_steps", "5",
                                "--output_dir", os.path.join(tmp, "run")],
        }
        print(f"one {corpus.stat().st_size / 1e6:.0f} MB file, first line one {args.mb:g} MB document")
        print(f"{'command':<18}{'peak RSS':>12}{'wall':>10}")
        for name, command in commands.items():
            rss, wall = peak(command, env)
            print(f"{name:<18}{rss:>8.0f} MiB{wall:>10}", flush=True)


if __name__ == "__main__":
    main()
