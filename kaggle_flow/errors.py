"""Domain errors. The library raises them; the CLI prints `Error: <message>` and exits 1."""


class FlowError(Exception):
    """A problem the user can act on; the message names the file, row and value."""


class ConfigError(FlowError):
    """A competition TOML that cannot be read or does not validate."""


class DataError(FlowError):
    """Missing data folder, missing files, bad CSV rows, broken images under --strict."""


class NotFoundError(FlowError):
    """An unknown name (competition, model, preset, run...) or a missing artifact."""


class NotWritableError(FlowError):
    """A folder flow must write to is on a read-only file system or not the user's to write."""


class DiskFullError(FlowError):
    """Not enough free space for a write: checked before it starts, or the disk filled up during it."""


class TrainingInterrupted(FlowError):
    """Ctrl-C (or SIGTERM) during training: the last finished epoch is saved and can be resumed."""


class NothingToResume(TrainingInterrupted):
    """Ctrl-C before the first checkpoint of a run (or of a fold): there is nothing to continue."""


class TrainingDiverged(FlowError):
    """A NaN or infinite loss: the run is marked failed, and nothing picks its weights."""


class RankFailed(FlowError):
    """A process of a data-parallel run failed; the others were stopped. `disk_full`: it failed for
    want of space (a DiskFullError of its own), so the run can continue once there is room."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full
