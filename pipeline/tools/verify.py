"""Prove the published results: rerun from scratch and compare, check accuracy floors.

    python -m pipeline.tools.verify rerun     # `make verify`
    python -m pipeline.tools.verify accuracy  # the weekly reproduction's accuracy gate

`rerun` clones the repository's committed state into a temporary directory,
runs the whole pipeline there from nothing (no DVC cache, no outputs) and fails,
naming each file, if any output's md5 differs from the committed dvc.lock.
`accuracy` fails if a variant's test accuracy is under its floor in
.ci/accuracy_floors.yaml.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline.library.numerics import build_note
from pipeline.runtime.params import load_params

FLOORS_FILE = Path(".ci/accuracy_floors.yaml")


def output_hashes(lock: dict) -> dict[str, str]:
    """The md5 of every stage output recorded in a parsed dvc.lock, by path."""
    return {
        out["path"]: out["md5"]
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    }


def compare_outputs(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """One line per output whose md5 differs, or that only one side has."""
    problems = []
    for path in sorted(expected.keys() | actual.keys()):
        if path not in actual:
            problems.append(f"{path}: in dvc.lock but not produced by the rerun")
        elif path not in expected:
            problems.append(f"{path}: produced by the rerun but not in dvc.lock")
        elif expected[path] != actual[path]:
            problems.append(f"{path}: md5 {expected[path]} in dvc.lock, {actual[path]} rerun")
    return problems


def rerun(repository: Path) -> list[str]:
    """Rerun the committed pipeline from scratch in a temporary clone; the differences."""
    committed = subprocess.run(
        ["git", "show", "HEAD:dvc.lock"], cwd=repository, capture_output=True, text=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="verify-") as scratch:
        clone = Path(scratch) / "repo"
        subprocess.run(["git", "clone", "--quiet", str(repository), str(clone)], check=True)
        environment = {key: value for key, value in os.environ.items() if key != "DVC_ROOT"}
        environment.pop("MLFLOW_TRACKING_URI", None)  # the clone's own store, thrown away after
        subprocess.run(
            [sys.executable, "-m", "dvc", "repro"], cwd=clone, env=environment, check=True
        )
        rerun_lock = yaml.safe_load((clone / "dvc.lock").read_text())
    return compare_outputs(output_hashes(yaml.safe_load(committed)), output_hashes(rerun_lock))


def accuracy_shortfalls(metrics_dir: Path, models: list[str], floors: dict) -> list[str]:
    """One line per variant whose test accuracy is under its floor (or has no metrics)."""
    problems = []
    for name in models:
        floor = floors.get("variants", {}).get(name, floors["default"])
        path = metrics_dir / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        accuracy = json.loads(path.read_text())["test_accuracy"]
        if accuracy < floor:
            problems.append(f"{name}: test accuracy {accuracy:.4f} is under its floor {floor}")
    return problems


def main(argv: list[str]) -> int:
    """Run a check; print each problem on its own line; exit status 1 if there is any."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.verify", description=__doc__)
    parser.add_argument("check", choices=("rerun", "accuracy"))
    args = parser.parse_args(argv)
    if args.check == "rerun":
        note = build_note()
        if note:
            print(f"verify rerun: {note.removeprefix('note: ')}", file=sys.stderr)
        problems = rerun(Path.cwd())
        success = "every output matches dvc.lock"
    else:
        models = list(load_params().models)  # read as the stages read it
        floors = yaml.safe_load(FLOORS_FILE.read_text())
        problems = accuracy_shortfalls(Path("data/metrics"), models, floors)
        success = f"every variant reaches its accuracy floor ({FLOORS_FILE})"
    for problem in problems:
        print(f"verify {args.check}: {problem}", file=sys.stderr)
    if not problems:
        print(f"verify {args.check}: {success}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
