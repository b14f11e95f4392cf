"""The errors a user can cause, each reported as one line naming the file or key."""


class PipelineError(Exception):
    """Bad input from the user: reported as its one-line message, exit status 1."""


class ParamsError(PipelineError):
    """params.yaml is missing, malformed or breaks the params contract."""


class DatasetError(PipelineError):
    """A dataset file is missing, unreadable or not in the expected schema."""


class TrackingError(PipelineError):
    """The MLflow tracking store cannot be reached or refuses a run."""


class InputError(PipelineError):
    """A file a stage reads (other than a dataset) is missing or malformed."""
