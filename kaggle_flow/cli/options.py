"""The training options, defined once: `flow train` and `flow run` take the same flags.

`@training_options` appends every option of `TRAINING_OPTIONS` to a command's own parameters (so
both `--help`s list them all) and hands the command one `flags` (config.Flags: the recipe keys and
run options the flags set, None where a flag was not given: the competition's recipe then) and one
`launch` (distributed.Launch: the processes to train in).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from kaggle_flow.config import Flags

_R = "(default: the competition's recipe)"


def _opt(type_: Any, flag: str, text: str, **kwargs: Any) -> Any:
    return Annotated[Optional[type_], typer.Option(flag, help=text, show_default=False, **kwargs)]


# parameter name (a RunConfig key) -> its option; every default is None (= the recipe) except the plain switches
TRAINING_OPTIONS: dict[str, Any] = {
    "model": _opt(str, "--model", f"Model name, see `flow models`, or auto {_R}."),
    "image_size": _opt(str, "--size", f"Training image size in px, or auto {_R}.", metavar="PX|auto"),
    "epochs": _opt(str, "--epochs", f"Epochs, or auto {_R}.", metavar="N|auto"),
    "batch_size": _opt(str, "--batch-size", f"Images per step and process (with --nproc N the global batch is N times that), or auto {_R}.", metavar="N|auto"),
    "lr": _opt(str, "--lr", f"Peak learning rate {_R}; 'find': the suggestion of `flow lr-find`, run first; "
               "see --scale-lr for several processes.", metavar="LR|find"),
    "optimizer": _opt(str, "--optimizer", f"adam, adamw or sgd {_R}."),
    "weight_decay": _opt(float, "--weight-decay", f"Weight decay {_R}."),
    "schedule": _opt(str, "--schedule", f"cosine, step or constant {_R}."),
    "warmup_epochs": _opt(float, "--warmup-epochs", f"Linear warmup from 0, in epochs {_R}."),
    "label_smoothing": _opt(float, "--label-smoothing", f"Label smoothing epsilon {_R}."),
    "loss": _opt(str, "--loss", f"ce, weighted or focal {_R}."),
    "preset": _opt(str, "--preset", f"Augmentation preset, see `flow augment` {_R}."),
    "erasing": _opt(float, "--erasing", f"Random erasing probability {_R}."),
    "cutout": _opt(float, "--cutout", f"Cutout probability {_R}."),
    "gridmask": _opt(float, "--gridmask", f"GridMask probability {_R}."),
    "mixup": _opt(float, "--mixup", f"Mixup Beta parameter, 0 = off {_R}."),
    "cutmix": _opt(float, "--cutmix", f"CutMix Beta parameter, 0 = off {_R}."),
    "ema": _opt(float, "--ema", f"Decay of the weights' moving average, e.g. 0.999; 0 = off {_R}."),
    "balance": _opt(
        bool, "--balance/--no-balance",
        "Label shuffling: every class as often as the largest, redrawn each epoch (default: `flow balance`, else the recipe).",
    ),
    "sizes": _opt(str, "--sizes", "Progressive resizing, e.g. 64,128,224: epochs divided among the sizes; the last is the final size."),
    "fold": _opt(int, "--fold", "Validation fold of runs/COMP/folds.csv (default 0)."),
    "folds": _opt(str, "--folds", "'all': one run per fold, out-of-fold predictions and the CV score.", metavar="all"),
    "seed": _opt(int, "--seed", f"Random seed; the same seed repeats a CPU run {_R}."),
    "patience": _opt(int, "--patience", f"Stop after N epochs without improvement; 0 = never {_R}."),
    "amp": Annotated[bool, typer.Option("--amp", help="Mixed precision, float16 autocast: --amp-level o1 (GPU only; ignored on CPU).")],
    "amp_level": _opt(str, "--amp-level", "Mixed precision on a GPU: o1 (float16 autocast, = --amp), o2 (float16 weights, "
                      "float32 master copies) or bf16 (bfloat16 autocast, no loss scaling; Ampere and later).", metavar="o1|o2|bf16"),
    "nproc": _opt(int, "--nproc", "Data-parallel training in N processes on this machine (paddle.distributed): one per GPU "
                  "where there are GPUs, else CPU processes. --batch-size is per process.", metavar="N"),
    "gpus": _opt(str, "--gpus", "The GPUs to train on, one process each, e.g. 0,1 (default with --nproc N: the first N).", metavar="IDS"),
    "nnodes": _opt(int, "--nnodes", "Machines training together; each runs the same command with its --node-rank and the same "
                   "--master, in a working directory they share.", metavar="N"),
    "node_rank": _opt(int, "--node-rank", "This machine's number among --nnodes, 0 to N-1 (default 0; node 0 writes the run).", metavar="K"),
    "master": _opt(str, "--master", "HOST:PORT on node 0 where the processes of several machines meet.", metavar="HOST:PORT"),
    "sync_bn": Annotated[bool, typer.Option("--sync-bn", help="BatchNorm statistics over the global batch "
                                            "(paddle.nn.SyncBatchNorm; GPUs only). Without it each process normalizes its own batch.")],
    "scale_lr": Annotated[bool, typer.Option("--scale-lr", help="Linear scaling rule for several processes: the peak --lr times "
                                             "the number of processes, as the global batch grew by that much (warmup recommended).")],
    "pretrained": _opt(bool, "--pretrained/--no-pretrained", "Start from ImageNet weights (default: the automatic recipe does on "
                       "RGB photos when the weights are here or can be downloaded, see `flow weights`; else the recipe)."),
    "download": _opt(bool, "--download/--no-download", "Whether the automatic recipe may download ImageNet weights "
                     "(default: when the network answers); --no-download: only the weights already in paddle's cache."),
    "freeze": _opt(bool, "--freeze/--no-freeze", f"Train only the classifier head; the backbone stays as loaded {_R}."),
    "freeze_epochs": _opt(int, "--freeze-epochs", f"Train only the head for N epochs, then every layer (fine-tuning) {_R}.", metavar="N"),
    "weights": _opt(Path, "--weights", "Start from this .pdparams file (e.g. a run's best.pdparams).", metavar="FILE"),
    "init_from": _opt(str, "--init-from", "Start from the best weights of an earlier run of any competition: a run id "
                      "under runs/*/ or a run folder; its model (with --model auto), the head replaced when the classes differ.",
                      metavar="RUN"),
    "max_params": _opt(int, "--max-params", "Refuse models with more parameters (default: the competition's limit)."),
    "workers": _opt(int, "--workers", "DataLoader worker processes (default 0: the main process)."),
    "visualdl": Annotated[bool, typer.Option("--visualdl", help="Write VisualDL logs into the run folder.")],
    "full": Annotated[bool, typer.Option(
        "--full", help="Refit on every labelled image (nothing held out) with the best validated run's recipe, "
        "for the epochs it found best; `flow submit` then uses the refit.",
    )],
}
_SWITCHES = ("amp", "visualdl", "full", "sync_bn", "scale_lr")  # plain flags: off means "not given"
LAUNCH_OPTIONS = ("nproc", "gpus", "nnodes", "node_rank", "master")  # distributed.Launch, not RunConfig keys


def to_flags(values: dict[str, Any]) -> Flags:
    """The options' values as Flags for `train.train` (None: not given, use the recipe)."""
    from kaggle_flow.config import AMP_LEVELS, Flags, parse_sizes
    from kaggle_flow.errors import FlowError

    level = values["amp_level"]
    if level is not None and level not in AMP_LEVELS:
        raise FlowError(f"--amp-level takes {', '.join(AMP_LEVELS[:-1])} or {AMP_LEVELS[-1]} (got {level!r})")
    if values["folds"] not in (None, "all"):
        raise FlowError(f"--folds takes 'all' (got '{values['folds']}')")
    given = {k: v for k, v in values.items() if k in Flags.model_fields and v is not None}
    return Flags.of({
        **given,
        "amp": level or ("o1" if values["amp"] else None),
        "image_size": _number_or_auto(values["image_size"], "--size"),
        "epochs": _number_or_auto(values["epochs"], "--epochs"),
        "batch_size": _number_or_auto(values["batch_size"], "--batch-size"),
        "lr": _lr(values["lr"]),
        "sizes": parse_sizes(values["sizes"]) if values["sizes"] is not None else None,
        "weights": str(values["weights"]) if values["weights"] is not None else None,
        **{key: values[key] or None for key in _SWITCHES if key != "amp"},
    })


def to_launch(values: dict[str, Any]) -> Any:
    """The flags that say how many processes train, and where (distributed.Launch)."""
    from kaggle_flow.engine.distributed import Launch

    given = {k: values[k] for k in LAUNCH_OPTIONS if values[k] is not None}
    return Launch(**given)


def _lr(text: str | None) -> float | str | None:
    from kaggle_flow.config import LR_FIND
    from kaggle_flow.errors import FlowError

    if text is None or text.strip() == LR_FIND:
        return None if text is None else LR_FIND
    try:
        return float(text)
    except ValueError:
        raise FlowError(f"--lr takes a number or '{LR_FIND}' (got {text!r})") from None


def recipe_flags(model: str | None, size: str | None, batch_size: str | None, optimizer: str | None) -> Flags:
    """The recipe options `flow lr-find` shares with `flow train` as Flags (None: the automatic recipe)."""
    from kaggle_flow.config import Flags

    return Flags.of({"model": model, "image_size": _number_or_auto(size, "--size"),
                     "batch_size": _number_or_auto(batch_size, "--batch-size"), "optimizer": optimizer})


def _number_or_auto(text: str | None, flag: str) -> int | str | None:
    from kaggle_flow.errors import FlowError

    if text is None or text.strip() == "auto":
        return None if text is None else "auto"
    try:
        return int(text)
    except ValueError:
        raise FlowError(f"{flag} takes a whole number or 'auto' (got {text!r})") from None


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every training option; it receives them as `flags` and `launch` keywords.

    Example:
        @app.command("train")
        @training_options
        def train_cmd(comp: CompArg = None, *, flags: Any, launch: Any) -> None: ...

    (`flags` is a config.Flags and `launch` a distributed.Launch; annotated Any because Typer
    evaluates every annotation, and importing those would slow `flow --help`.)
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name not in ("flags", "launch")]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False if name in _SWITCHES else None, annotation=option)
        for name, option in TRAINING_OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in TRAINING_OPTIONS}
        return command(**kwargs, flags=to_flags(given), launch=to_launch(given))

    signature = inspect.Signature([*own, *added])
    wrapper.__signature__ = signature  # type: ignore[attr-defined]  # what Typer reads the options from
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return wrapper
