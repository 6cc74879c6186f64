"""RunConfig: everything one training run needs, typed and validated once.

    RunConfig = the competition's Recipe (competitions/NAME.toml [train])
              + the run options given as flags (fold, folds, amp, weights, max_params, workers, ...)
              + the competition facts (classes, metric, image size, channels, mean/std)

It is built once by `build_config`, saved as the run's config.json and inside every checkpoint, and
validated again whenever it is read back (`--resume`, prediction, export), so a hand-edited or older
config.json fails with one line instead of somewhere deep in the loop. The model is frozen: nothing
changes a run's config after it is built; `model_copy(update=...)` makes the config of a fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from kaggle_flow.competition import Recipe, key_path
from kaggle_flow.errors import ConfigError, FlowError

if TYPE_CHECKING:
    from kaggle_flow.competition import Competition
    from kaggle_flow.engine.recipe import Facts

AmpMode = Literal["off", "o1", "o2", "bf16"]


class RunConfig(Recipe):
    """One training run: recipe + run options + competition facts (see the module docstring).

    Every `auto` of the recipe is resolved here (recipe.py): the values are concrete, and `auto`
    keeps the reason of each choice made.
    """

    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    auto: dict[str, str] = Field(default_factory=dict)  # key -> why the automatic recipe chose its value

    # run options (flags that are not part of a competition's recipe)
    fold: Annotated[int, Field(ge=0)] = 0  # the validation fold of runs/COMP/folds.csv
    folds: Literal["all"] | None = None  # "all": one run per fold (cross-validation)
    amp: AmpMode = "off"  # mixed precision on a GPU: o1 / o2 (float16 autocast / float16 weights) or bf16
    weights: str | None = None  # a .pdparams to start from
    max_params: Annotated[int, Field(ge=1)] | None = None  # refuse larger models
    workers: Annotated[int, Field(ge=0)] = 0  # DataLoader worker processes
    visualdl: bool = False  # VisualDL logs in the run folder
    balance_reason: str = ""  # why label shuffling is on or off (the recipe, `flow balance`, a flag)
    full: bool = False  # train on every labelled row, no validation (a refit of a validated run)
    full_from: str | None = None  # the validated run whose recipe and epoch count a full refit uses
    normalize_on: Literal["device", "host"] = "device"  # where uint8 batches become normalized float32

    # data parallel (paddle.distributed): batch_size is per process, the global batch is batch_size * world_size
    nproc: Annotated[int, Field(ge=1)] = 1  # training processes on each machine
    world_size: Annotated[int, Field(ge=1)] = 1  # training processes on all machines together
    sync_bn: bool = False  # BatchNorm statistics over the global batch (SyncBatchNorm, GPUs only)
    scale_lr: bool = False  # linear scaling rule: the peak lr times world_size

    # competition facts, copied so a run never depends on the TOML staying the same
    competition: str
    classes: list[str]
    metric: Literal["accuracy", "macro_f1", "balanced_accuracy", "kappa"] = "accuracy"
    image_size: Annotated[int, Field(ge=1)]  # px: the final training size (the last of `sizes`)
    channels: Literal[1, 3] = 3
    mean: list[Annotated[float, Field(allow_inf_nan=False)]]
    std: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    data_dir: str | None = None

    # the run folder: its id under runs/COMP (RUN, or RUN/foldK for a fold of a CV run)
    run: str | None = None
    n_folds: Annotated[int, Field(ge=2)] | None = None  # cross-validation runs: how many folds

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if len(self.classes) < 2:
            raise ValueError("classes: at least 2 classes")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std: need {self.channels} values each (one per channel)")
        if self.sizes and self.sizes[-1] != self.image_size:
            raise ValueError(f"image_size {self.image_size} is not the last of sizes {self.sizes}")
        if self.world_size % self.nproc:
            raise ValueError(f"world_size {self.world_size} is not a multiple of nproc {self.nproc}")
        return self

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        """`--amp` and configs written before the modes: True is o1, False is off."""
        return {True: "o1", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def peak_lr(self) -> float:
        """The learning rate the schedule peaks at: `lr`, times the processes with --scale-lr.

        The linear scaling rule (Goyal et al., 2017): a global batch k times larger takes a k times
        larger learning rate, reached through the warmup.
        """
        return self.lr * self.world_size if self.scale_lr else self.lr

    def epoch_sizes(self) -> list[int]:
        """The image size of each epoch: the epochs divided among `sizes`, the remainder to the last ones."""
        sizes = self.sizes or [self.image_size]
        base, extra = divmod(self.epochs, len(sizes))
        counts = [base + (1 if i >= len(sizes) - extra else 0) for i in range(len(sizes))]
        return [s for s, n in zip(sizes, counts) for _ in range(n)]

    def frozen(self, epoch: int) -> bool:
        """Whether the backbone is frozen in this epoch: --freeze throughout, or the first --freeze-epochs."""
        return self.freeze_epochs >= epoch if self.freeze_epochs else self.freeze

    def for_fold(self, fold: int, run: str) -> RunConfig:
        """The config of one fold of a cross-validation run."""
        return self.model_copy(update={"folds": None, "fold": fold, "run": run})


RUN_OPTIONS = frozenset(RunConfig.model_fields) - frozenset(Recipe.model_fields)


def _flag(key: str) -> str:
    return "--size" if key == "image_size" else "--" + key.replace("_", "-")


_RANGES = {  # pydantic error type -> how the bound reads in a sentence
    "greater_than": "above {gt}",
    "greater_than_equal": "{ge} or more",
    "less_than": "below {lt}",
    "less_than_equal": "at most {le}",
    "finite_number": "a finite number",
}


def validation_message(exc: ValidationError, where: str | None = None) -> str:
    """The first problem as one line: `--lr must be above 0 (got -1.0)`, or `FILE: key 'lr': ...`."""
    first = exc.errors()[0]
    loc = key_path(first["loc"])
    key = loc[0] if loc else ""
    got = first.get("input")
    if first["type"] in _RANGES:
        bounds = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (first.get("ctx") or {}).items()}
        what = _RANGES[first["type"]].format(**bounds)
        text = f"must be {what} (got {got!r})"
    elif first["type"] == "value_error":
        return f"{where}: {first['msg'].removeprefix('Value error, ')}" if where else first["msg"].removeprefix("Value error, ")
    elif first["type"] == "literal_error":
        text = f"must be {first['msg'].removeprefix('Input should be ')} (got {got!r})"
    else:
        text = f"{first['msg'][0].lower()}{first['msg'][1:]} (got {got!r})"
    if where is None:
        return f"{_flag(key)} {text}"
    return f"{where}: key '{'.'.join(loc)}' {text}"


def check_names(config: RunConfig) -> None:
    """Every registry name and size exists: one line listing the valid names otherwise."""
    from kaggle_flow import models
    from kaggle_flow.data import augment
    from kaggle_flow.engine import optim

    models.MODELS[config.model]
    augment.PRESETS[config.preset]
    optim.OPTIMIZERS[config.optimizer]
    optim.SCHEDULES[config.schedule]
    optim.LOSSES[config.loss]
    for size in sorted(set(config.epoch_sizes())):
        models.check_size(config.model, size)
    if (config.freeze or config.freeze_epochs) and models.MODELS[config.model].head is None:
        raise FlowError(f"--freeze: {config.model} has no separable classifier head")


def build_config(
    comp: Competition,
    overrides: dict[str, Any] | None = None,
    *,
    data_dir: Path | None = None,
    facts: Facts | None = None,
    placeholders: bool = False,
) -> RunConfig:
    """The competition's Recipe, overridden by the non-None entries of `overrides`, plus its facts.

    `auto` values are chosen from `facts` (recipe.resolve). With `placeholders`, they are left to
    training and replaced by stand-ins, so the other options can be checked before anything runs.
    Unknown keys, bad ranges and unknown registry names are one line each (a FlowError).
    """
    from kaggle_flow.engine import recipe

    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(RunConfig.model_fields))
    if unknown:
        raise FlowError(f"unknown training option {unknown[0]!r}")
    values: dict[str, Any] = {**comp.train.model_dump(), "max_params": comp.max_params, **given}
    sizes = values.get("sizes") or []
    values["image_size"] = sizes[-1] if sizes else given.get("image_size", comp.image_size)
    values.update(competition=comp.name, classes=list(comp.classes), metric=comp.metric, channels=comp.channels,
                  mean=list(comp.mean), std=list(comp.std), data_dir=str(data_dir) if data_dir is not None else None)
    _check_auto(values)
    if placeholders and facts is None:
        values.update({k: STAND_INS[k] for k in recipe.AUTO_KEYS if values.get(k) == recipe.AUTO})
    values, reasons = recipe.resolve(values, facts, num_classes=len(comp.classes), channels=comp.channels,
                                     max_params=values.get("max_params"))
    try:
        config = RunConfig(**values, auto={**values.get("auto", {}), **reasons})
    except ValidationError as exc:
        raise FlowError(validation_message(exc)) from None
    check_names(config)
    return config


STAND_INS = {"model": "smallcnn", "image_size": 32, "batch_size": 32, "epochs": 60}  # only for checking options


def _check_auto(values: dict[str, Any]) -> None:
    """`auto` is a value only for the keys recipe.py chooses; any other text is a bad value."""
    from kaggle_flow.engine.recipe import AUTO_KEYS

    for key in AUTO_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value != "auto" and key != "model":
            raise FlowError(f"{_flag(key)} takes a number or 'auto' (got {value!r})")


def load_config(data: dict[str, Any], where: Path | str) -> RunConfig:
    """A RunConfig read back from config.json or a checkpoint, validated again."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, str(where))) from None


def parse_sizes(text: str) -> list[int]:
    """'64,128,224' -> [64, 128, 224]; a one-line error for anything else."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes:
        raise FlowError(f"--sizes takes pixel sizes separated by commas, e.g. 64,128,224 (got '{text}')")
    return sizes
