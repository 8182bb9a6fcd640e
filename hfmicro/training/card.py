"""The model card (README.md) written next to the final model, with the run's real numbers."""

import math
import os
import platform
import shlex
import sys

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..models import count_parameters
from .hardware import cpu_name
from .probes import DEMOS

# the oldest transformers the modeling files run on (setup.py requires it too)
TRANSFORMERS_FLOOR = "5.4"


def card_data(name: str, model, plan, report: dict) -> ModelCardData:
    """The card's metadata, as the Hub reads it: task, tags, the training dataset (when it is a Hub
    dataset) and the held-out results as a model-index."""
    from ..data.files import looks_local

    data_args, task = plan.data_args, plan.objective.task
    on_hub = data_args.dataset != "builtin" and not looks_local(data_args.dataset)
    dataset = data_args.dataset if on_hub else os.path.basename(os.path.normpath(data_args.dataset))
    results = [
        EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset, dataset_config=data_args.dataset_config,
                   dataset_split="validation", metric_type=metric, metric_name=label, metric_value=round(report[key], 4))
        for key, metric, label in (("eval_loss", "loss", "Loss"), ("eval_perplexity", "perplexity", "Perplexity"),
                                   ("eval_accuracy", "accuracy", f"{plan.objective.scored.capitalize()} accuracy"))
        if isinstance(report.get(key), (int, float)) and math.isfinite(report[key])
    ]
    return ModelCardData(library_name="transformers", pipeline_tag=task, model_name=name,
                         tags=["hfmicro", model.config.model_type, "pretraining"],
                         datasets=[data_args.dataset] if on_hub else None, eval_results=results or None)


def write_model_card(folder: str, name: str, model, tokenizer, plan, report: dict, demo: str) -> str:
    """README.md in `folder` for the model called `name` (its Hub id when pushed, else the run's folder
    name), from its RunPlan."""
    objective = plan.objective
    data_args, model_args = plan.data_args, plan.model_args
    counts = count_parameters(model)
    hardware = plan.hardware
    where = hardware.name if hardware.device == "cuda" else f"{cpu_name()} ({os.cpu_count()} cores)"
    command = " ".join(shlex.quote(a) for a in [os.path.basename(sys.argv[0]), *(plan.argv or sys.argv[1:])])
    dataset = data_args.dataset + (f" ({data_args.dataset_config})" if data_args.dataset_config else "")
    rows = [
        ("architecture", f"{type(model).__name__}: {model.config.num_hidden_layers} layers, "
                         f"{model.config.num_attention_heads} heads, hidden {model.config.hidden_size}, MLP "
                         f"{model.config.intermediate_size} (preset {model_args.preset}"
                         f"{' with overrides' if model_args.config_overrides() else ''})"),
        ("parameters", f"{counts['total']:,}" + (f" ({counts['active']:,} active per token)"
                                                  if counts["active"] != counts["total"] else "")),
        ("vocabulary", f"{len(tokenizer):,} tokens"),
        ("training data", dataset + (f": {report['data_documents']:,} documents; {report['data_skipped']}; "
                                     f"{report['data_empty_documents']:,} empty documents"
                                     if "data_skipped" in report else "")),
        ("sequence length", str(data_args.max_seq_length)),
        ("tokens seen", f"{report['tokens_seen']:,}"),
        ("optimizer steps", f"{report['global_step']:,}"),
        ("training time", f"{report['train_seconds'] / 60:.1f} min on {where}, {plan.precision}"),
        ("eval loss", f"{report.get('eval_loss', float('nan')):.4f}"),
        ("eval perplexity", f"{report.get('eval_perplexity', float('nan')):.1f}"),
        ("eval accuracy", f"{report.get('eval_accuracy', float('nan')):.2%} ({objective.scored} prediction)"),
    ]
    if "probe_top5" in report:
        rows.append(("fill-mask probe", f"top-1 {report['probe_top1']:.1%}, top-5 {report['probe_top5']:.1%} on "
                                        f"{report['probe_size']} held-out sentences (unigram baseline top-5 "
                                        f"{report['unigram_top5']:.1%})"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    usage = DEMOS[objective.task].usage.format(name=name, mask=tokenizer.mask_token)
    body = f"""
# {name}

A {model.config.model_type} model pre-trained from scratch with hfmicro
({objective.description}). It loads with plain transformers {TRANSFORMERS_FLOOR} or
newer (`trust_remote_code=True` runs the modeling file stored next to the weights) or with hfmicro installed.

| | |
|---|---|
{table}

## Use

```python
from transformers import pipeline

{usage}
```

## Sample output at the end of training

```
{demo}
```

## How it was trained

```bash
{command}
```

torch {torch.__version__}, Python {platform.python_version()}. Full curves: `training_history.json`,
`training_curves.png`.
"""
    path = os.path.join(folder, "README.md")
    ModelCard(f"---\n{card_data(name, model, plan, report).to_yaml()}\n---\n{body}").save(path)
    return path
