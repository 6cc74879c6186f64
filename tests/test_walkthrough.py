"""The README's first block, command by command, on a generated lemon download."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from clitools import flow
from course_trees import make_lemon

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_walkthrough() -> list[list[str]]:
    """The commands of the README's first indented block, comments dropped, `flow` removed."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"\n\n((?: {4}flow .*\n)+)", text)
    assert block, "README.md: no indented block of flow commands"
    return [shlex.split(line.split("#")[0])[1:] for line in block[1].splitlines()]


def test_the_readme_walkthrough_works_on_a_lemon_download(workdir: Path) -> None:
    commands = readme_walkthrough()
    assert [c[0] for c in commands] == ["eda", "split", "balance", "augment", "train", "submit", "score", "run"]
    tree = make_lemon(workdir / "lemon_lesson", scale=0.05)
    result = flow("import", "lemon", tree)
    assert result.exit_code == 0, result.output
    for command in commands:
        if command[0] == "run":
            continue  # `flow run mnist` trains the embedded mnist for minutes; tests/test_cli_run.py runs `flow run digits`
        if command[0] == "train":
            command = [*command, "--epochs", "1"]  # the automatic recipe's epochs take minutes on a CPU
        result = flow(*command)
        assert result.exit_code == 0, f"flow {shlex.join(command)}:\n{result.output}"
        assert "Traceback" not in result.output
        if command[0] == "augment":
            assert "lemon's image size is auto" in result.output and "previewing at 128 px" in result.output
            assert (workdir / "runs/lemon/augment_medium.png").is_file()
    assert "Local accuracy of submissions/lemon/" in result.output


def test_train_eda_train_keeps_the_folds(workdir: Path) -> None:
    """eda's broken-image list changes the table training reads, not the data the folds were made from."""
    tree = make_lemon(workdir / "lemon_lesson", scale=0.05)
    assert flow("import", "lemon", tree).exit_code == 0
    fast = ["--model", "smallcnn", "--sizes", "16", "--epochs", "1"]
    result = flow("train", *fast)  # no eda yet: the default folds hold the 3 broken images
    assert result.exit_code == 0, result.output
    assert flow("eda").exit_code == 0
    result = flow("train", *fast)
    assert result.exit_code == 0, result.output
    assert "was made from other data" not in result.output
    csv = tree.parent / "data/lemon/train_images.csv"  # a real change still asks for flow split
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    result = flow("train", *fast)
    assert result.exit_code == 1 and "folds.csv was made from other data; run flow split lemon again" in result.output
