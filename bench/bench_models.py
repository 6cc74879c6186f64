"""Training images/s of the models a from-scratch run picks between, side by side in one process.

Each model is timed by `kaggle_flow.engine.speed.train_speed`: random images, forward + backward + Adam
step, one warm-up step, then steps for `--seconds`; paddle's CPU threads set to the usable cores as
`flow train` sets them (or the GPU when there is one). The plain 3x3 ResNets (resnet-t/s/m) against
smallcnn, paddle's resnet18 and the depthwise mobilenet_v2, all for 10 classes RGB.

    .venv/bin/python bench/bench_models.py [--size 64] [--batch-size 32] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("FLOW_NO_PROGRESS", "1")

NAMES = ["resnet-t", "resnet-s", "resnet-m", "smallcnn", "resnet18", "mobilenet_v2"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    from kaggle_flow.machine import cpu_threads
    from kaggle_flow.models import param_count
    from kaggle_flow.engine.speed import train_speed

    print(f"{platform.processor() or platform.machine()}, {cpu_threads()} CPU threads, load {os.getloadavg()[0]:.1f}; "
          f"{args.size} px, batch {args.batch_size}, {args.seconds:g} s a model")
    print(f"{'model':<14}{'params':>12}{'images/s':>10}")
    for name in NAMES:
        speed = train_speed(name, size=args.size, batch_size=args.batch_size, seconds=args.seconds, max_step_s=60)
        rate = f"{speed.images_per_s:10.1f}" if speed.images_per_s else f"  {speed.note}"
        print(f"{name:<14}{param_count(name):>12,}{rate}", flush=True)
