"""One process of a data-parallel run, as `flow train --nproc N` has paddle.distributed.launch start it.

    python -m kaggle_flow.engine.worker --comp COMP --data DIR --run RUN_DIR [--strict] [--resume]

Not a command for people: distributed.py builds this line, and the process reports how it ended in
its log folder (distributed.RankStatus), where the launching process reads it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_flow.engine.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--run", default="", help="the run folder (rank 0's is the one every process trains)")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    from kaggle_flow.engine.distributed import rank_main

    return rank_main(args.comp, args.data, args.run, strict=args.strict, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
