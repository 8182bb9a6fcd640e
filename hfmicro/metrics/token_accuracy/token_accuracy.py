"""Top-1 token accuracy of a language model: the share of scored positions whose most likely token is
the reference token. Shipped with hfmicro and loaded offline with `evaluate.load(<this folder>)`."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-1 accuracy over scored token positions. `predictions` are the model's argmax token ids and
`references` the label ids at the same positions, flattened; positions labelled `ignore_index` (-100:
unmasked tokens in MLM, padding) are not scored. For a causal LM, align first: the prediction at
position t against the token at t + 1.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted token ids.
    references (`list` of `int`): reference token ids; `ignore_index` where not scored.
    ignore_index (`int`, defaults to -100): label of positions that are not scored.
Returns:
    accuracy (`float`): correct / scored (0.0 when nothing is scored).
    scored_tokens (`int`): positions scored.
Examples:
    >>> metric = evaluate.load("hfmicro/metrics/token_accuracy")
    >>> metric.compute(predictions=[5, 7, 9, 1], references=[5, -100, 8, 1])
    {'accuracy': 0.6666666666666666, 'scored_tokens': 3}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, ignore_index: int = -100):
        predictions, references = np.asarray(predictions), np.asarray(references)
        scored = references != ignore_index
        n = int(scored.sum())
        return {"accuracy": float((predictions[scored] == references[scored]).mean()) if n else 0.0, "scored_tokens": n}
