"""Commands: models, augment."""

from kaggle_flow.cli.app import app  # noqa: F401
