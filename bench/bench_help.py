"""Wall time of `flow --help` next to a bare `import typer` (best of 5, fresh processes).

The gap is what flow's own modules cost at start-up; heavy libraries must stay out of it.

    .venv/bin/python bench/bench_help.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def best_of(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command; the best is printed")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "flow"
    flow = [str(script)] if script.is_file() else [sys.executable, "-c", "from kaggle_flow.cli import main; main()"]
    typer_name = 'python -c "import typer"'
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        typer_name: [sys.executable, "-c", "import typer"],
        "flow --help": [*flow, "--help"],
    }
    best = {name: best_of(cmd, args.repeat) for name, cmd in commands.items()}
    print(f"best of {args.repeat}, seconds")
    for name, seconds in best.items():
        print(f"{name:28s}{seconds:8.3f}")
    print(f"{'flow --help - import typer':28s}{best['flow --help'] - best[typer_name]:8.3f}")


if __name__ == "__main__":
    main()
