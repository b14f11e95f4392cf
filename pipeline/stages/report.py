"""report: every variant's metrics, curves and journey on one page (HTML and Markdown)."""

import argparse
import json
from pathlib import Path

from pipeline.errors import InputError
from pipeline.files import write_text
from pipeline.params import load_params
from pipeline.report import (
    Variant,
    ablation_pairs,
    accuracy_bars,
    pictures_of,
    ranked,
    render_html,
    render_markdown,
)
from pipeline.tracking import stage_run


def read_metrics(path: Path) -> dict:
    """A metrics file written by an evaluate stage."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (run its evaluate stage first)") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg})") from None


def main(argv: list[str]) -> None:
    """`report <metrics_dir> <plots_dir> <report_dir>`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline report", description=__doc__)
    parser.add_argument("metrics_dir", type=Path, help="holds <model>.json per variant")
    parser.add_argument("plots_dir", type=Path, help="holds <model>/ per variant")
    parser.add_argument("report_dir", type=Path, help="where index.html and README.md go")
    args = parser.parse_args(argv)

    params = load_params()
    chart = args.report_dir / "accuracy.png"
    outputs = [args.report_dir / "index.html", args.report_dir / "README.md", chart]
    metrics_files = {name: args.metrics_dir / f"{name}.json" for name in params.models}
    pictures = {
        picture
        for name, model in params.models.items()
        for picture in pictures_of(model.arch, args.plots_dir / name)
    }
    inputs = [*metrics_files.values(), *sorted(pictures)]

    with stage_run("report", params.tracked("models", "datasets"), inputs, outputs) as run:
        variants = []
        for name, settings in params.models.items():
            metrics = read_metrics(metrics_files[name])
            totals = [metrics[label]["total"] for label in ("counter_clockwise", "clockwise")]
            variants.append(
                Variant(
                    name=name,
                    settings=settings,
                    parameters=metrics["parameters"],
                    accuracy=metrics["accuracy"],
                    loss=metrics["loss"],
                    majority_share=max(totals) / sum(totals),
                    plots_dir=args.plots_dir / name,
                )
            )
        ablations = ablation_pairs(params.models, params.datasets)
        ordered = ranked(variants)
        accuracy_bars([v.name for v in ordered], [v.accuracy for v in ordered], chart)
        write_text(outputs[0], render_html(variants, ablations, chart))
        write_text(outputs[1], render_markdown(variants, ablations, chart, args.report_dir))
        run.log_metrics({f"test_accuracy_{v.name}": v.accuracy for v in ordered})
