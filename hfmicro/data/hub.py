"""Hub datasets (`wikitext`, `openwebtext`, `allenai/c4`, ...) through `datasets.load_dataset`.

Offline, `load_dataset` retries for ~24 s before failing; a 3-second probe of the Hub endpoint
first turns that into an immediate, explicit error.
"""

from ..errors import first_line
from .report import DataError

PROBE_TIMEOUT_S = 3.0


def _offline_advice(name: str) -> str:
    from huggingface_hub import is_offline_mode

    cached = (
        "HF_HUB_OFFLINE is set, so only a copy already in the datasets cache can be used"
        if is_offline_mode()
        else f"if {name!r} is already in the datasets cache, set HF_HUB_OFFLINE=1 to use that copy"
    )
    return (
        "Use local files instead (--dataset 'corpus/*.jsonl', .txt, .csv or .parquet) or --dataset builtin "
        f"(offline, ships with Python); {cached}."
    )


def _check_reachable(name: str) -> None:
    from huggingface_hub import constants, is_offline_mode
    from huggingface_hub.utils import get_session

    if is_offline_mode():
        return  # load_dataset then uses its local cache only and fails within a second
    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as err:
        raise DataError(
            f"cannot load dataset {name!r}: the Hugging Face Hub ({constants.ENDPOINT}) is unreachable "
            f"({type(err).__name__}). {_offline_advice(name)}"
        ) from None


def load_hub_dataset(name: str, config: str | None, *, streaming: bool):
    """The dataset's splits (a DatasetDict, or IterableDatasetDict when streaming)."""
    _check_reachable(name)
    import datasets

    try:
        return datasets.load_dataset(name, config, streaming=streaming)
    except Exception as err:  # not found, offline without a cached copy, missing config, ...
        reason = first_line(err)
        config_hint = f" (config {config!r})" if config else ""
        raise DataError(
            f"cannot load dataset {name!r}{config_hint} from the Hub: {reason}. {_offline_advice(name)}"
        ) from None
