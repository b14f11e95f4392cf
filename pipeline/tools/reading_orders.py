"""The test accuracy of every digits variant over several model seeds: what order teaches.

    python -m pipeline.tools.reading_orders            # seeds 21, 22, 23: the README's table
    python -m pipeline.tools.reading_orders --seeds 1 2 3 4 5

For each variant of params.yaml trained on digits, the same data, split and training as its
train stage, with `models.<name>.seed` (its initial weights) set to each seed in turn (its
own seed gives the test accuracy `dvc metrics show` reports, bit for bit); it prints a
Markdown table of the test accuracy per variant: mean, lowest and highest. Nothing is
written and nothing is logged: the data are made in memory, as the generate and split
stages make them, with the CPU kernels pinned as the stages pin them.
"""

import argparse
import sys
from dataclasses import dataclass

from pipeline.library import numerics
from pipeline.library.errors import ParamsError
from pipeline.runtime.params import Params, load_params

DEFAULT_SEEDS = (21, 22, 23)


@dataclass(frozen=True)
class Result:
    """One variant's test accuracy per seed."""

    name: str
    order: str
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)


def measure(params: Params, seeds: tuple[int, ...]) -> list[Result]:
    """Train and test every digits variant once per seed; their results, in params order."""
    import torch

    from pipeline.library.digits import generate_digits
    from pipeline.library.models import build_model
    from pipeline.library.split import stratified_split
    from pipeline.library.squares import shape_of
    from pipeline.library.training import LabelledSequences, evaluate, train

    numerics.configure_torch(params.cpu_capability)
    torch.set_num_threads(1)  # as the stages run: the same bytes on every machine
    results = []
    for name, model in params.models.items():
        dataset = params.dataset(model.dataset)
        if dataset.kind != "digits":
            continue
        digits = generate_digits(dataset.order, dataset.seed)
        split = params.split
        parts = stratified_split(digits.labels, split.val, split.test, split.seed)
        training, testing = digits.take(parts.train), digits.take(parts.test)
        validation = LabelledSequences.from_squares(digits.take(parts.val))
        accuracies = []
        for seed in seeds:
            network = build_model(model.spec(shape_of(training)), seed=seed)
            train(
                network,
                LabelledSequences.from_squares(training),
                epochs=model.epochs,
                batch_size=model.batch_size,
                learning_rate=model.lr,
                shuffle_seed=model.shuffle_seed,
                validation_data=validation,  # as the stage: its draws shape the batches
            )
            accuracies.append(evaluate(network, LabelledSequences.from_squares(testing)).accuracy)
            print(f"{name} seed {seed}: {accuracies[-1]:.4f}", file=sys.stderr, flush=True)
        results.append(Result(name, dataset.order, tuple(accuracies)))
    return results


def table(results: list[Result], seeds: tuple[int, ...]) -> str:
    """The results as a Markdown table: variant, reading order, mean and range."""
    lines = [
        f"| variant | reading order | test accuracy, mean of {len(seeds)} seeds | range |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| `{result.name}` | `{result.order}` | {result.mean:.1%} | "
        f"{min(result.accuracies):.1%} to {max(result.accuracies):.1%} |"
        for result in results
    ]
    seed_list = ", ".join(map(str, seeds))
    return "\n".join([*lines, "", f"Model seeds {seed_list}; chance is 10%."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.reading_orders", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="model seeds"
    )
    arguments = parser.parse_args(argv)
    try:
        params = load_params(arguments.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seeds = tuple(arguments.seeds)
    print(table(measure(params, seeds), seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
