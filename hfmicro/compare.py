"""`hfmicro compare RUN_DIR...`: several training runs side by side, as our users compared weight decay
1e-4 vs 1e-5, vocabularies of 10k vs 30k or 2 vs 6 layers.

One PNG overlays train loss, eval loss, eval accuracy and learning rate (x: optimizer steps or tokens);
a table lists the settings that differ between the runs and each run's final metrics, tokens and time.
Everything comes from the files a run writes: `training_history.json` (every log line),
`run_settings.json` (the options it ran with), `config.json` and `eval_results.json`.
"""

import json
import os

from .verbs import add_verb, answer

HISTORY, SETTINGS, RESULTS = "training_history.json", "run_settings.json", "eval_results.json"
# where a run lives or what it is called, not how it trained
_NOT_SETTINGS = {"output_dir", "logging_dir", "run_name", "hub_model_id", "overwrite_output_dir", "architectures",
                 "auto_map", "transformers_version", "dtype", "model_type", "_name_or_path"}
PANELS = [("loss", "train loss"), ("eval_loss", "eval loss"), ("eval_accuracy", "eval accuracy"),
          ("learning_rate", "learning rate")]


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} cannot be read ({err})") from None


def load_run(folder: str) -> dict:
    """A run folder's history, flat settings and final numbers; ValueError in one line if it is not one."""
    if not os.path.isdir(folder):
        raise ValueError(f"run folder {folder!r} not found")
    history = _read_json(os.path.join(folder, HISTORY))
    if not history:
        raise ValueError(f"{folder} has no {HISTORY}: not a run folder of hfmicro's recipes (or nothing logged yet)")
    settings = {}
    for key, value in (_read_json(os.path.join(folder, "config.json")) or {}).items():
        if isinstance(value, (int, float, str, bool)) and key not in _NOT_SETTINGS:
            settings[key] = value
    for section in (_read_json(os.path.join(folder, SETTINGS)) or {}).values():
        if isinstance(section, dict):
            settings.update({k: v for k, v in section.items() if k not in _NOT_SETTINGS and not isinstance(v, (dict, list))})
    results = _read_json(os.path.join(folder, RESULTS)) or {}
    evals = [r for r in history if "eval_loss" in r]
    last_eval = evals[-1] if evals else {}
    tokens_per_step = settings.get("tokens_per_step")
    step = results.get("global_step", max(r["step"] for r in history))
    final = {key: results.get(key, last_eval.get(key)) for key in ("eval_loss", "eval_accuracy", "eval_perplexity")}
    return {
        "run": folder, "history": history, "settings": settings, "final": final, "global_step": step,
        "tokens_seen": results.get("tokens_seen", step * tokens_per_step if tokens_per_step else None),
        "train_seconds": results.get("train_seconds"), "finished": bool(results),
    }


def differing_settings(runs: list[dict]) -> list[str]:
    keys = sorted({k for run in runs for k in run["settings"]})
    return [k for k in keys if len({json.dumps(run["settings"].get(k)) for run in runs}) > 1]


def masking_rates(runs: list[dict]) -> list:
    """The masking rate of each run of a masked objective (None for the others, or unknown)."""
    from .objectives import OBJECTIVES

    def masked(run) -> bool:
        objective = OBJECTIVES.get(run["settings"].get("objective", "mlm"))
        return objective is not None and objective.masked

    return [run["settings"].get("mlm_probability") if masked(run) else None for run in runs]


def plot_runs(runs: list[dict], path: str, x: str = "steps") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (key, title) in zip(axes.flat, PANELS):
        for run in runs:
            per_step = run["settings"].get("tokens_per_step") or 0
            at = (lambda r: r.get("num_input_tokens_seen", r["step"] * per_step)) if x == "tokens" else (lambda r: r["step"])
            points = [(at(r), r[key]) for r in run["history"] if key in r]
            if points:
                ax.plot(*zip(*points), label=os.path.basename(os.path.normpath(run["run"])), marker="." if len(points) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("tokens" if x == "tokens" else "optimizer step")
        ax.grid(alpha=0.3)
        if key.endswith("loss") or key == "learning_rate":
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    labels = {}
    for ax in axes.flat:  # one legend for the figure: a run may have no points in some panel
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    fig.legend(list(labels.values()), list(labels), loc="upper center", ncol=min(len(labels), 4), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(folders: list[str], out: str | None = None, x: str = "steps") -> dict:
    runs = [load_run(folder) for folder in folders]
    differing = differing_settings(runs)
    report = {
        "runs": [{k: run[k] for k in ("run", "final", "global_step", "tokens_seen", "train_seconds", "finished")}
                 | {"settings": {k: run["settings"].get(k) for k in differing}} for run in runs],
        "differing_settings": differing,
        "loss_comparable": len({rate for rate in masking_rates(runs) if rate is not None}) <= 1,
        "plot": None,
    }
    if out:
        plot_runs(runs, out, x)
        report["plot"] = out
    return report


def format_table(report: dict) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    names = [os.path.basename(os.path.normpath(run["run"])) for run in report["runs"]]
    rows = [(key, [run["settings"].get(key) for run in report["runs"]]) for key in report["differing_settings"]]
    rows += [("eval_loss", [run["final"]["eval_loss"] for run in report["runs"]]),
             ("eval_perplexity", [run["final"]["eval_perplexity"] for run in report["runs"]]),
             ("eval_accuracy", [run["final"]["eval_accuracy"] for run in report["runs"]]),
             ("steps", [run["global_step"] for run in report["runs"]]),
             ("tokens_seen", [run["tokens_seen"] for run in report["runs"]]),
             ("train_minutes", [None if run["train_seconds"] is None else run["train_seconds"] / 60
                                for run in report["runs"]])]
    width = max(len(key) for key, _ in rows) + 2
    columns = [max(len(name), *(len(cell(values[i])) for _, values in rows)) + 2 for i, name in enumerate(names)]
    lines = ["".ljust(width) + "".join(name.rjust(w) for name, w in zip(names, columns))]
    if report["differing_settings"]:
        lines.append("settings that differ:")
    for n, (key, values) in enumerate(rows):
        if n == len(report["differing_settings"]):
            lines.append("results:")
        lines.append(key.ljust(width) + "".join(cell(v).rjust(w) for v, w in zip(values, columns)))
    if not report["loss_comparable"]:
        lines.append("note: the runs mask different shares of tokens (mlm_probability), so their MLM losses are not "
                     "directly comparable; score them on the same fixed masks with `hfmicro evaluate`")
    unfinished = [name for name, run in zip(names, report["runs"]) if not run["finished"]]
    if unfinished:
        lines.append(f"note: not finished (numbers from the last logged eval): {', '.join(unfinished)}")
    return "\n".join(lines)


def _compare_command(args) -> int:
    png = None if args.json and args.out is None else (args.out or "compare.png")
    return answer(args, lambda: compare(args.runs, png, args.x),
                  lambda report: f"{format_table(report)}\ncurves: {report['plot']}")


def register(subparsers) -> None:
    parser = add_verb(subparsers, "compare", _compare_command, "overlay the curves of several runs and tabulate what differs",
                      "Overlay train loss, eval loss, accuracy and learning rate of several runs in one PNG, and print "
                      "the settings that differ and each run's final metrics, tokens and time.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output_dir of a recipe run")
    parser.add_argument("--out", default=None, help="the PNG to write (default compare.png; with --json only if given)")
    parser.add_argument("--x", choices=("steps", "tokens"), default="steps", help="x-axis of the curves")
