"""`python -m kaggle_flow.cli ...`: the `flow` command without its console script."""

from kaggle_flow.cli import main

main()
