"""The evaluation metrics of the recipes and of `hfmicro evaluate`: one code path for both.

Each metric is an `evaluate` module shipped in this folder (`token_accuracy/`), loaded offline with
`evaluate.load(<folder>)`; perplexity is exp(mean token loss), the loss the model itself returns.
"""

import math
import os

METRICS_DIR = os.path.dirname(os.path.abspath(__file__))


def load_metric(name: str):
    """An `evaluate` module shipped with hfmicro, loaded from its folder (no network)."""
    import evaluate

    return evaluate.load(os.path.join(METRICS_DIR, name), keep_in_memory=True)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: exp(50) already says "untrained"


def lm_metrics(objective: str):
    """(compute_metrics, preprocess_logits_for_metrics) for `Trainer`: each eval batch is reduced to its
    argmax predictions at once (full logits are never held), laid out like the labels (-100 where not
    scored); compute_metrics scores them with the `token_accuracy` module."""
    import torch

    from ..objectives import objective_named

    next_token = objective_named(objective).next_token
    accuracy = load_metric("token_accuracy")

    def preprocess_logits_for_metrics(logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        if logits.dim() == 2:  # sparse MLM head: (num_scored, V), in the order of labels != -100
            predictions = torch.full_like(labels, -100)
            predictions[labels != -100] = logits.argmax(-1)
            return predictions
        return logits.argmax(-1)

    def compute_metrics(eval_pred):
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        if next_token:  # position t predicts token t + 1
            predictions, labels = predictions[:, :-1], labels[:, 1:]
        scored = labels != -100
        result = accuracy.compute(predictions=predictions[scored], references=labels[scored])
        return {"accuracy": result["accuracy"]}

    return compute_metrics, preprocess_logits_for_metrics
