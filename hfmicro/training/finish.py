"""The end of a run: the last evaluation, the final model with its tokenizer, demo, probe scores, model card
and results, written into a staging folder and published into output_dir (eval_results.json last), then
pushed to the Hub when asked. Also: whether a relaunch finds the run's training already ended."""

import os

import torch

from ..atomic import write_json_atomic
from ..metrics import perplexity
from .build import RunPlan
from .card import write_model_card
from .checkpoints import final_step, publish, staging_dir, trainer_state
from .probes import DEMOS
from .trainer import NonFiniteError


def finished_at(plan: RunPlan, output_dir: str) -> int | None:
    """The step at which this run's training already ended, or None when there is training left: the
    newest checkpoint reached the planned steps, or the final save after it finished (early stopping)
    and this launch plans no more steps than that run did."""
    if plan.resume is None:
        return None
    state = trainer_state(plan.resume)
    step = state["global_step"]
    if step >= plan.total_steps or (final_step(output_dir) == step and plan.total_steps <= state.get("max_steps", 0)):
        return step
    return None


def data_report(plan: RunPlan) -> dict:
    """What the prepared corpus held, for eval_results.json (a stream is counted while it is read)."""
    summary = plan.data_summary
    if not summary.splits:
        return {}
    return dict(data_documents=sum(s.documents for s in summary.splits.values()), data_bad_rows=summary.bad_rows,
                data_empty_documents=summary.empty_documents, data_bad_row_reasons=summary.bad_row_reasons,
                data_bad_row_examples=summary.bad_row_examples, data_skipped=summary.describe_skipped())


def final_save(trainer, tokenizer, plan: RunPlan, seconds: float) -> None:
    """Evaluate, then write the final model, tokenizer, card and results into a staging folder and
    publish them into output_dir (eval_results.json last). Push to the Hub when asked."""
    args = trainer.args
    metrics = trainer.evaluate()
    if "eval_loss" in metrics:
        metrics["eval_perplexity"] = perplexity(metrics["eval_loss"])
    trainer.log_metrics("eval", metrics)
    model = trainer.model
    bad = trainer.nonfinite_weights()
    if bad:
        raise NonFiniteError(f"the final model has non-finite weights ({bad[0]}, {len(bad)} tensors): not saved")
    staging = staging_dir(args.output_dir, reset=trainer.is_world_process_zero())
    if args.world_size > 1:
        torch.distributed.barrier()  # the staging folder exists before any rank writes into it
    trainer.save_full_model(staging)  # a collective call under FSDP; writes on process 0 only
    if not trainer.is_world_process_zero():
        return

    report = {"train_seconds": round(seconds, 1), "global_step": trainer.state.global_step,
              "tokens_seen": trainer.state.num_input_tokens_seen,
              "nonfinite_steps_skipped": trainer.nonfinite_steps, **metrics, **data_report(plan)}
    demo = DEMOS[plan.objective.task]
    text = demo.show(model.eval(), tokenizer, plan.demos)
    if demo.final_scores is not None:
        scores, line = demo.final_scores(model, tokenizer, plan.data_args)
        report.update(scores)
        print(f"[hfmicro] {line}")
    print(f"[hfmicro] {demo.name}:\n{text}", flush=True)
    name = (args.push_to_hub and args.hub_model_id) or os.path.basename(os.path.abspath(args.output_dir))
    write_model_card(staging, name, model, tokenizer, plan, report, text)
    write_json_atomic(os.path.join(staging, "eval_results.json"), report)
    publish(staging, args.output_dir)
    if args.push_to_hub:  # the published folder, card included (checkpoint-* folders are not uploaded)
        trainer.push_to_hub()
