"""RunConfig: everything one training run needs, typed and validated once; Flags: what the flags set.

    RunConfig = the competition's Recipe (competitions/NAME.toml [train])
              + Flags, the recipe keys and run options given as flags (None: not given)
              + the automatic recipe's choices for what is still `auto` (engine/recipe.py)
              + the competition facts (classes, metric, image size, channels, mean/std)

It is built once by `engine.configure.build_config`, saved as the run's config.json and inside every checkpoint, and
validated again whenever it is read back (`--resume`, prediction, export), so a hand-edited or older
config.json fails with one line instead of somewhere deep in the loop. The model is frozen: nothing
changes a run's config after it is built; `model_copy(update=...)` makes the config of a fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from kaggle_flow.competition import MAX_CHANNELS, Recipe, key_path
from kaggle_flow.errors import ConfigError, FlowError
from kaggle_flow.metrics import known_metric
from kaggle_flow.recipe_keys import RECIPE_KEYS, flag_of
from kaggle_flow.target import TargetName

AmpMode = Literal["off", "o1", "o2", "bf16"]
AMP_LEVELS: tuple[str, ...] = get_args(AmpMode)[1:]  # what --amp-level takes


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
    init_from: str | None = None  # the earlier run (of any competition) whose best weights `weights` names
    download: bool = True  # the automatic recipe could count on downloading ImageNet weights (False: --no-download)
    max_params: Annotated[int, Field(ge=1)] | None = None  # refuse larger models
    workers: Annotated[int, Field(ge=0)] = 0  # DataLoader worker processes
    visualdl: bool = False  # VisualDL logs in the run folder
    balance_reason: str = ""  # why label shuffling is on or off (the recipe, `flow balance`, a flag)
    full: bool = False  # train on every labelled row, no validation (a refit of a validated run)
    full_from: str | None = None  # the validated run whose recipe and epoch count a full refit uses
    excluded: Annotated[int, Field(ge=0)] = 0  # ids of runs/COMP/exclude.json left out of training (`flow review --exclude`)
    exclude_fingerprint: str | None = None  # that list's fingerprint (exclusion.py): a resumed run reads the same list
    pseudo: str | None = None  # the run whose confident test predictions join training (`--pseudo RUN`; pseudo.py)
    pseudo_threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.95  # top probability a test image needs
    pseudo_soft: bool = False  # they join with the predicted probabilities as soft targets, not the argmax
    pseudo_count: Annotated[int, Field(ge=0)] = 0  # test images that joined (RUN/pseudo.csv)

    # data parallel (paddle.distributed): batch_size is per process, the global batch is batch_size * world_size
    nproc: Annotated[int, Field(ge=1)] = 1  # training processes on each machine
    world_size: Annotated[int, Field(ge=1)] = 1  # training processes on all machines together
    sync_bn: bool = False  # BatchNorm statistics over the global batch (SyncBatchNorm, GPUs only)
    scale_lr: bool = False  # linear scaling rule: the peak lr times world_size

    # competition facts, copied so a run never depends on the TOML staying the same
    competition: str
    classes: list[str]
    target: TargetName = "single"  # the label's form (kaggle_flow.target): one class an image, or a set
    metric: str = "accuracy"  # a name of kaggle_flow.metrics.METRICS
    image_size: Annotated[int, Field(ge=1)]  # px: the final training size (the last of `sizes`)
    channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] = 3  # 1 grey, 3 RGB, or the competition's channel files
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
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"--warmup-epochs {self.warmup_epochs:g} is longer than the run ({self.epochs} epoch{'s' if self.epochs != 1 else ''}): "
                             f"give at most --epochs, or more epochs")
        if self.world_size % self.nproc:
            raise ValueError(f"world_size {self.world_size} is not a multiple of nproc {self.nproc}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        """config.json of runs made while batches could be normalized on the host: that key is gone."""
        return {k: v for k, v in data.items() if k not in RETIRED_KEYS} if isinstance(data, dict) else data

    _known_metric = field_validator("metric")(known_metric)

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


RETIRED_KEYS = ("normalize_on",)


_RecipeFlags = create_model(  # the recipe keys (recipe_keys.py) and the image size, each optional
    "_RecipeFlags",
    __config__=ConfigDict(extra="forbid", frozen=True),
    image_size=(Union[int, Literal["auto"], None], None),
    **{key.name: (key.flag_type, None) for key in RECIPE_KEYS},
)


class Flags(_RecipeFlags):  # type: ignore[misc,valid-type]
    """What the flags of `flow train` set: a recipe key or run option each, None where not given.

    The recipe keys come from their declaration (recipe_keys.py); the run options are declared here.
    Only the types are checked here; ranges and names are checked once, by RunConfig and the
    registries, so a flag and a TOML value fail with the same line.
    """

    # run options
    fold: int | None = None
    folds: Literal["all"] | None = None
    amp: AmpMode | None = None
    weights: str | None = None
    init_from: str | None = None  # a run id under runs/*/ or a run folder: its best.pdparams
    pseudo: str | None = None  # a run of this competition (any kind) whose confident test predictions join training
    pseudo_threshold: float | None = None
    pseudo_soft: bool | None = None
    download: bool | None = None  # False: the automatic recipe counts only the ImageNet weights already here
    max_params: int | None = None
    workers: int | None = None
    visualdl: bool | None = None
    full: bool | None = None
    sync_bn: bool | None = None
    scale_lr: bool | None = None
    # the processes training together (engine/distributed.py's Launch says how many)
    nproc: int | None = None
    world_size: int | None = None

    @model_validator(mode="after")
    def _pseudo_options(self) -> Flags:
        """--pseudo-threshold and --pseudo-soft say how --pseudo RUN labels: alone they would do nothing."""
        if self.pseudo is None and (self.pseudo_threshold is not None or self.pseudo_soft):
            raise ValueError(f"{'--pseudo-threshold' if self.pseudo_threshold is not None else '--pseudo-soft'} goes with --pseudo RUN")
        return self

    @classmethod
    def of(cls, given: Flags | dict[str, Any] | None) -> Flags:
        """Flags as they are, or from a dict of RunConfig keys (None values: not given)."""
        if isinstance(given, Flags):
            return given
        values = {k: v for k, v in (given or {}).items() if v is not None}
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise FlowError(f"unknown training option {unknown[0]!r}")
        try:
            return cls(**values)
        except ValidationError as exc:
            raise FlowError(validation_message(exc)) from None

    def given(self) -> dict[str, Any]:
        """The keys a flag set, with their values."""
        return self.model_dump(exclude_none=True)

    @property
    def final_size(self) -> int | Literal["auto"] | None:
        """The training image size the flags ask for: the last of --sizes, else --size."""
        return self.sizes[-1] if self.sizes else self.image_size


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
        return f"{flag_of(key)} {text}"
    return f"{where}: key '{'.'.join(loc)}' {text}"


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
