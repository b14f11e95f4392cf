"""Stage entry points: each module declares `STAGE` (its params and paths) and defines
`run(context)`, its own work; `pipeline.runtime.stage` runs them the same way.

The path arguments that several stages read are declared here, once (the contract test
holds every declaration to dvc.yaml).
"""

from pipeline.runtime.declaration import Arg

#: A trained model's folder, as train writes it (pipeline/library/models.py's file names).
MODEL = Arg("model", "holds weights.pt and config.json", ("weights.pt", "config.json"))
TEST = Arg("test", "the test split")
