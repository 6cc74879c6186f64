"""The training options, defined once: `flow train` and `flow run` take the same flags.

The option of each recipe key is derived from its declaration (recipe_keys.py: flag, metavar, help
with its range or choices); the image size, the run options and the launch options are declared here.

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

from kaggle_flow.recipe_keys import KEYS, RECIPE_KEYS, RecipeKey

if TYPE_CHECKING:
    from kaggle_flow.config import Flags

def _opt(type_: Any, flag: str, text: str, **kwargs: Any) -> Any:
    return Annotated[Optional[type_], typer.Option(flag, help=text, show_default=False, **kwargs)]


def _recipe_option(key: RecipeKey) -> Any:
    """A recipe key's option, from its declaration; a number that also takes a word, or a list, is read as text."""
    as_text = key.many or key.words or key.flag_words
    return _opt(str if as_text else key.type, key.option, key.help_text(), **({"metavar": key.metavar} if key.metavar else {}))


# parameter name (a RunConfig key) -> its option; every default is None (= the recipe) except the plain switches
TRAINING_OPTIONS: dict[str, Any] = {
    "image_size": _opt(str, "--size", "Training image size in px, or auto (default: the competition's image_size).", metavar="PX|auto"),
    **{key.name: _recipe_option(key) for key in RECIPE_KEYS},
    "fold": _opt(int, "--fold", "Validation fold of runs/COMP/folds.csv (default 0)."),
    "folds": _opt(str, "--folds", "'all': one run per fold, out-of-fold predictions and the CV score.", metavar="all"),
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
    "download": _opt(bool, "--download/--no-download", "Whether the automatic recipe may download ImageNet weights "
                     "(default: when the network answers); --no-download: only the weights already in paddle's cache."),
    "weights": _opt(Path, "--weights", "Start from this .pdparams file (e.g. a run's best.pdparams).", metavar="FILE"),
    "init_from": _opt(str, "--init-from", "Start from the best weights of an earlier run of any competition: a run id "
                      "under runs/*/ or a run folder; its model (with --model auto), the head replaced when the classes differ.",
                      metavar="RUN"),
    "pseudo": _opt(str, "--pseudo", "Pseudo-labels (Noisy Student): the test images RUN (a run, a --folds all run: its folds' "
                   "mean, or an ensemble) predicts with a top probability of at least --pseudo-threshold join each fold's "
                   "TRAINING rows with that label; validation never changes. Test predictions only, never out-of-fold ones.",
                   metavar="RUN"),
    "pseudo_threshold": _opt(float, "--pseudo-threshold", "With --pseudo: the top probability a test image needs to join "
                             "training, above 0 and at most 1 (default 0.95), as a share of the most the teacher gives "
                             "(1 - eps + eps/K after label smoothing eps).", metavar="P"),
    "pseudo_soft": Annotated[bool, typer.Option("--pseudo-soft", help="With --pseudo: the test images join with their "
                                                "predicted probabilities as soft targets instead of the argmax label.")],
    "max_params": _opt(int, "--max-params", "Refuse models with more parameters (default: the competition's limit)."),
    "workers": _opt(int, "--workers", "DataLoader worker processes (default 0: the main process)."),
    "visualdl": Annotated[bool, typer.Option("--visualdl", help="Write VisualDL logs into the run folder.")],
    "full": Annotated[bool, typer.Option(
        "--full", help="Refit on every labelled image (nothing held out) with the best validated run's recipe, "
        "for the epochs it found best; `flow submit` then uses the refit.",
    )],
}
_SWITCHES = ("amp", "visualdl", "full", "sync_bn", "scale_lr", "pseudo_soft")  # plain flags: off means "not given"
LAUNCH_OPTIONS = ("nproc", "gpus", "nnodes", "node_rank", "master")  # distributed.Launch, not RunConfig keys


def to_flags(values: dict[str, Any]) -> Flags:
    """The options' values as Flags for `train.train` (None: not given, use the recipe)."""
    from kaggle_flow.config import AMP_LEVELS, Flags
    from kaggle_flow.errors import FlowError

    level = values["amp_level"]
    if level is not None and level not in AMP_LEVELS:
        raise FlowError(f"--amp-level takes {', '.join(AMP_LEVELS[:-1])} or {AMP_LEVELS[-1]} (got {level!r})")
    if values["folds"] not in (None, "all"):
        raise FlowError(f"--folds takes 'all' (got '{values['folds']}')")
    given = {k: v for k, v in values.items() if k in Flags.model_fields and v is not None}
    return Flags.of({
        **given,
        **{key.name: _recipe_value(key, values[key.name]) for key in RECIPE_KEYS},
        "amp": level or ("o1" if values["amp"] else None),
        "image_size": _number_or_word(values["image_size"], "--size", int, ("auto",)),
        "weights": str(values["weights"]) if values["weights"] is not None else None,
        **{key: values[key] or None for key in _SWITCHES if key != "amp"},
    })


def to_launch(values: dict[str, Any]) -> Any:
    """The flags that say how many processes train, and where (distributed.Launch)."""
    from kaggle_flow.engine.distributed import Launch

    given = {k: values[k] for k in LAUNCH_OPTIONS if values[k] is not None}
    return Launch(**given)


def _recipe_value(key: RecipeKey, value: Any) -> Any:
    """A recipe option's value as Flags takes it: the text of a number-or-word or of a list parsed."""
    from kaggle_flow.config import parse_sizes

    if value is None or not isinstance(value, str) or key.type is str:
        return value
    if key.many:
        return parse_sizes(value)  # --sizes, the one list key
    return _number_or_word(value, key.flag_name, key.type, (*key.words, *key.flag_words))


def recipe_flags(model: str | None, size: str | None, batch_size: str | None, optimizer: str | None) -> Flags:
    """The recipe options `flow lr-find` shares with `flow train` as Flags (None: the automatic recipe)."""
    from kaggle_flow.config import Flags

    return Flags.of({"model": model, "image_size": _number_or_word(size, "--size", int, ("auto",)),
                     "batch_size": _recipe_value(KEYS["batch_size"], batch_size), "optimizer": optimizer})


def _number_or_word(text: str | None, flag: str, kind: type, words: tuple[str, ...]) -> Any:
    """'3e-4' -> 0.0003, 'auto' -> 'auto'; a one-line error naming what the flag takes otherwise."""
    from kaggle_flow.errors import FlowError

    if text is None or text.strip() in words:
        return None if text is None else text.strip()
    try:
        return kind(text)
    except ValueError:
        number = "a whole number" if kind is int else "a number"
        raise FlowError(f"{flag} takes {number} or {' or '.join(repr(w) for w in words)} (got {text!r})") from None


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
