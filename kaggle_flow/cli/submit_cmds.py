"""Commands: submit_cmds."""

from kaggle_flow.cli.app import app  # noqa: F401
