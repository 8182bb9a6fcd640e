"""The corpus pipeline: every recipe and the tokenizer trainer read text through here.

sources.py   --dataset spec → documents (builtin.py, files.py, hub.py), bad rows counted (report.py)
packing.py   tokenise, pack into fixed-length blocks, optional static masking
cache.py     on-disk cache of packed datasets, `hfmicro cache`
lm_datasets.py  load_lm_datasets: the above, for the recipes
stats.py     `hfmicro data stats`

Module-level imports are standard library and numpy only; `datasets` and `transformers` are imported
where they are used.
"""

from .arguments import DataArguments, parse_count
from .cache import cache_root
from .lm_datasets import (
    DataSummary, StreamState, StreamTracker, lm_data_collator, load_lm_datasets, wait_for_prepared,
)
from .packing import PackSummary
from .report import DataError, ReadReport
from .sources import iter_rows, iter_texts
from .stats import CorpusStats, corpus_stats

__all__ = [
    "CorpusStats",
    "DataArguments",
    "DataError",
    "DataSummary",
    "PackSummary",
    "ReadReport",
    "StreamState",
    "StreamTracker",
    "cache_root",
    "corpus_stats",
    "iter_rows",
    "iter_texts",
    "lm_data_collator",
    "load_lm_datasets",
    "parse_count",
    "wait_for_prepared",
]
