"""Competitions as data: competitions/NAME.toml, validated on load into a frozen model.

The built-in TOMLs ship inside the package (kaggle_flow.competitions); a competitions/NAME.toml in
the working directory is found next to them and wins on a name clash. Validation uses pydantic
models with extra keys forbidden, so an unknown key or a wrong type is one line naming the file and
the key.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from kaggle_flow.errors import ConfigError, NotFoundError
from kaggle_flow.kinds import KINDS, SubmissionKind, fitting
from kaggle_flow.metrics import METRICS, known_metric
from kaggle_flow.names import climbs_out, is_data_folder
from kaggle_flow.recipe_keys import RECIPE_KEYS, RecipeKey
from kaggle_flow.sample_files import CHANNEL_NAME
from kaggle_flow.target import TargetName

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MAX_CHANNELS = 8  # input channels a competition may have
KAGGLE_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # the SLUG of kaggle.com/competitions/SLUG


def check_kaggle_slug(slug: str) -> str:
    """`slug` when it is a Kaggle competition's slug; a one-line ValueError saying what one is otherwise."""
    if not KAGGLE_SLUG.fullmatch(slug):
        raise ValueError(f"kaggle: {slug!r} is not a Kaggle competition's slug (lowercase letters, digits and dashes, "
                         "as in kaggle.com/competitions/digit-recognizer)")
    return slug


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layout(_Strict):
    """Where the images and labels are. `kind` picks the reader in layouts.py.

    `channel_files` (csv): each sample is several grey files, {id}_{name}{id_extension} for each name
    (Human Protein Atlas: ["red", "green", "blue", "yellow"] reads abc_red.png ... abc_yellow.png),
    stacked in that order into one input of `channels` channels; the table's path names them all
    (kaggle_flow.sample_files). Empty: one image file a sample.
    """

    kind: Literal["csv", "folders", "prefix", "pixels"]
    train_dir: str = "train"  # images (csv, prefix) or one folder per class (folders); pixels: where they are written
    train_csv: str | None = None  # csv: the list of training images and labels; pixels: labels and pixel columns
    id_column: str = "id"  # csv: column holding the image file name
    id_extension: str = ""  # csv: appended to ids written without one (".png", ".tif"); "" = ids carry theirs
    label_column: str = "label"  # csv, pixels: column holding the label
    label_columns: list[str] = Field(default_factory=list)  # csv: one-hot columns, one per class in class order
    label_form: Literal["index", "name"] = "index"  # csv: label given as class index or class name
    label_map: str | None = None  # label code -> readable name (a JSON object, or a CSV of code,name), for tables and plots
    test_csv: str | None = None  # csv: the test ids (test_id_column); pixels: the test pixels, one image a row
    test_id_column: str = "id"  # csv: column of test_csv holding the test ids (extension as id_extension)
    image_side: Annotated[int, Field(ge=1)] = 28  # pixels: images are image_side x image_side grey
    prefix_labels: dict[str, int] = Field(default_factory=dict)  # prefix: file-name prefix -> index
    valid_dir: str | None = None  # extra labelled images, pooled with train
    valid_csv: str | None = None  # prefix: labels of valid_dir from a CSV
    valid_id_column: str = "imgName"
    valid_label_column: str = "Label"
    test_dir: str | list[str] | None = "test"  # unlabelled test images (flat, or one folder per class); may equal
    # train_dir (one images/ folder): the test ids then come from test_csv or the sample; a list: several folders read
    # as one test set, ids unique across them (Planet: ["test-jpg", "test-jpg-additional"])
    channel_files: list[str] = Field(default_factory=list)  # csv: several grey files a sample, {id}_{name}{id_extension},
    # stacked as its channels in this order (HPA: ["red", "green", "blue", "yellow"]); see kaggle_flow.sample_files

    @property
    def test_folders(self) -> list[str]:
        """The test folders test_dir names: none, one, or the several of a list."""
        if self.test_dir is None:
            return []
        return [self.test_dir] if isinstance(self.test_dir, str) else list(self.test_dir)

    @model_validator(mode="after")
    def _several_test_folders(self) -> Layout:
        """A list of test folders: each named once, none the training folder, their images read as they lie
        (no test_csv, no pixel CSV: those give the ids of one folder)."""
        if not isinstance(self.test_dir, list):
            return self
        twice = next((name for name in self.test_dir if self.test_dir.count(name) > 1), None)
        if twice is not None:
            raise ValueError(f"layout.test_dir: {json.dumps(twice)} is named twice")
        if self.train_dir in self.test_dir:
            raise ValueError(f"layout.test_dir: a list of test folders holds no training folder ({json.dumps(self.train_dir)}); "
                             "a test set shared with train_dir is test_dir = train_dir")
        if self.test_csv or self.kind == "pixels":
            key = "layout 'pixels'" if self.kind == "pixels" else "layout.test_csv"
            raise ValueError(f"layout.test_dir: {key} gives the test images of one folder, not of a list")
        return self

    @model_validator(mode="after")
    def _pixels_write_apart(self) -> Layout:
        """A pixel layout writes PNGs: into folders of their own, never the data folder itself."""
        if self.kind != "pixels" or isinstance(self.test_dir, list):  # a list: _several_test_folders says
            return self
        if self.train_csv is None:
            raise ValueError("layout 'pixels' needs layout.train_csv")
        if self.test_csv and self.test_dir in (None, self.train_dir):
            raise ValueError("layout 'pixels' writes the test images to their own folder: set layout.test_dir apart from train_dir")
        for key in ("train_dir", "test_dir") if self.test_csv else ("train_dir",):
            if is_data_folder(value := getattr(self, key)):
                raise ValueError(f"layout.{key} = {json.dumps(value)} is the data folder itself: a pixel layout "
                                 "writes its PNGs into a folder of their own (e.g. \"train\")")
        return self

    @model_validator(mode="after")
    def _channel_names(self) -> Layout:
        """Channel files: names that fit a file name and the table's path pattern, in a csv layout with an extension."""
        names = self.channel_files
        if not names:
            return self
        if self.kind != "csv":
            raise ValueError(f"layout.channel_files: read by a csv layout (ids from train_csv), not kind '{self.kind}'")
        bad = next((n for n in names if not CHANNEL_NAME.fullmatch(n)), None)
        if bad is not None:
            raise ValueError(f"layout.channel_files: {json.dumps(bad)} is not a channel name (no comma, brace, slash or space)")
        if len(set(names)) != len(names) or len(names) > MAX_CHANNELS:
            raise ValueError(f"layout.channel_files: 1 to {MAX_CHANNELS} different names (got {', '.join(names)})")
        if not self.id_extension:
            raise ValueError('layout.channel_files: set layout.id_extension too, the channel files\' extension (e.g. ".png")')
        return self


class SubmissionFormat(_Strict):
    """The CSV the site accepts: its columns, how ids and values are written, its sample and solution files.

    `kind` says what a row holds besides its id: a name of kaggle_flow.kinds.KINDS (label, probability,
    probabilities, top_k, tags), whose entry gives the value columns, their values, check and scoring.
    `copied` columns of the sample hold no prediction (Kaggle's Usage, a row number): each submission
    writes them as the sample has them, in the sample's column order.
    """

    kind: SubmissionKind = "label"
    id_column: str = "id"
    label_column: str = "label"  # the value column of label, probability, top_k and tags
    id_form: Literal["name", "stem"] = "name"  # test_0001.jpg or test_0001
    label_form: Literal["index", "name"] = "index"  # label, top_k, tags: a class as its index or its name
    positive: str | None = None  # probability: the class whose probability is written; default: the second of two
    columns: list[str] = Field(default_factory=list)  # probabilities: one column per class, in class order
    k: Annotated[int, Field(ge=1)] = 5  # top_k: classes per row
    copied: list[str] = Field(default_factory=list)  # sample columns without a prediction (Usage): written as the sample has them
    sample: str | None = "sample_submission.csv"  # row order to follow, when the file exists
    solution: str | None = "solution.csv"  # test labels for local scoring, when the file exists

    def value_columns(self, classes: list[str]) -> list[str]:
        """The columns after the id, as its kind writes them: one per class for `probabilities`, else `label_column`."""
        return KINDS[self.kind].value_columns(self, classes)

    def positive_index(self, classes: list[str]) -> int:
        """The class whose probability a `probability` submission writes."""
        return classes.index(self.positive) if self.positive is not None else 1

    def check_fits(self, classes: list[str]) -> None:
        """A ValueError (one line, naming the key) when the format cannot be written for these classes."""
        if self.positive is not None and self.positive not in classes:
            raise ValueError(f"submission.positive: '{self.positive}' is not a class ({', '.join(classes)})")
        KINDS[self.kind].check_fits(self, classes)
        if self.columns and len(self.columns) != len(classes):
            raise ValueError(f"submission.columns: {len(self.columns)} columns for {len(classes)} classes (one per class)")
        if self.copied and not self.sample:
            raise ValueError(f"submission.copied: {', '.join(self.copied)} is copied from the sample; set submission.sample")
        names = [self.id_column, *self.value_columns(classes), *self.copied]
        if len(set(names)) != len(names):
            raise ValueError(f"submission: a column name is used twice ({', '.join(names)})")


class _RecipeChecks(_Strict):
    """What the keys of a recipe must satisfy together."""

    @model_validator(mode="after")
    def _sizes_fit_epochs(self) -> Recipe:
        sizes, epochs = self.sizes, self.epochs  # type: ignore[attr-defined]
        if epochs != "auto" and len(sizes) > epochs:
            raise ValueError(f"sizes: {len(sizes)} sizes for {epochs} epochs: need at least one epoch per size")
        return self


def _recipe_field(key: RecipeKey) -> tuple[Any, Any]:
    """A recipe key as a pydantic field: its range on each number (never inf or nan), its words beside it."""
    checks = {k: getattr(key, k) for k in ("ge", "gt", "le", "lt") if getattr(key, k) is not None}
    if key.type is float:
        checks["allow_inf_nan"] = False
    value: Any = Annotated[key.type, Field(**checks)] if checks else key.type
    if key.many:
        value = list[value]  # type: ignore[valid-type]
    if key.words:
        value = Union[value, Literal[key.words]]
    default = {"default_factory": lambda: list(key.default)} if key.many else {"default": key.default}
    return value, Field(**default, description=key.help)


Recipe = create_model(
    "Recipe",
    __doc__="""The competition's default training recipe (its TOML's [train] table); `flow train` flags override it.

    The keys, their ranges and defaults are declared in recipe_keys.py. Every number is range-checked, so
    a TOML with a bad value fails when it is loaded (naming the file and the key) and a flag with a bad
    value fails before anything is trained (naming the flag). Non-finite numbers (inf, nan) are refused.
    """,
    __base__=_RecipeChecks,
    __module__=__name__,
    **{key.name: _recipe_field(key) for key in RECIPE_KEYS},
)


class Source(_Strict):
    """How to obtain the data."""

    embedded: Literal["mnist", "digits"] | None = None
    url: str = ""
    how: str = ""


DATA_PATHS = {  # the keys of a TOML that name a file or folder of the data folder
    "layout": ("train_dir", "train_csv", "label_map", "test_dir", "test_csv", "valid_dir", "valid_csv"),
    "submission": ("sample", "solution"),
}


class Competition(_Strict):
    name: str
    title: str
    classes: list[str]
    target: TargetName = "single"  # one class an image, or a set of them (multi): kaggle_flow.target
    metric: str = "accuracy"  # a name of kaggle_flow.metrics.METRICS
    image_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # training size, px; auto: see recipe.py
    channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] = 3  # 1 grey, 3 RGB; others: layout.channel_files, or
                                                                # images of that many bands (RGBA: 4)
    mean: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    max_params: Annotated[int, Field(ge=1)] | None = None  # model-size limit of the contest, in parameters
    kaggle: str | None = None  # the competition's slug on Kaggle; None: its name (kaggle_api.slug_of)
    layout: Layout
    submission: SubmissionFormat = Field(default_factory=SubmissionFormat)
    train: Recipe = Field(default_factory=Recipe)
    data: Source = Field(default_factory=Source)
    path: Path

    _known_metric = field_validator("metric")(known_metric)
    _kaggle_slug = field_validator("kaggle")(check_kaggle_slug)

    def data_paths(self) -> list[tuple[str, str]]:
        """Every path the TOML names inside the data folder, with its key: [("layout.train_dir", "train"), ...];
        a key of several (test_dir's list) once for each."""
        named = ((f"{table}.{key}", getattr(getattr(self, table), key)) for table, keys in DATA_PATHS.items() for key in keys)
        return [(key, value) for key, values in named if values is not None
                for value in ([values] if isinstance(values, str) else values)]

    @model_validator(mode="before")
    @classmethod
    def _tags_by_default(cls, data: Any) -> Any:
        """A multi-label competition writes its answers as tags unless its TOML names another kind."""
        if isinstance(data, dict) and data.get("target") == "multi":
            submission = data.get("submission") or {}
            if isinstance(submission, dict) and "kind" not in submission:
                data = {**data, "submission": {**submission, "kind": "tags"}}
        return data

    @model_validator(mode="after")
    def _check(self) -> Competition:
        for key, value in self.data_paths():
            if climbs_out(value):
                raise ValueError(f"{key} = {json.dumps(value)}: a TOML's paths are relative to the data folder "
                                 "and stay inside it (no absolute path, no '..')")
        if len(self.classes) < 2:
            raise ValueError("classes: a competition needs at least 2 classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: class names must be unique")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std: need {self.channels} values each (one per channel)")
        if self.layout.channel_files and len(self.layout.channel_files) != self.channels:
            raise ValueError(f"channels = {self.channels}, and layout.channel_files names {len(self.layout.channel_files)} "
                             "files a sample (one per channel)")
        for prefix, index in self.layout.prefix_labels.items():
            if not 0 <= index < len(self.classes):
                raise ValueError(f"layout.prefix_labels: {prefix!r} maps to {index}, not a class index")
        self.submission.check_fits(self.classes)
        _check_metric_fits(self.metric, self.submission.kind, len(self.classes))
        if self.target not in METRICS[self.metric].targets:
            raise ValueError(f"metric '{self.metric}' scores {' or '.join(METRICS[self.metric].targets)}-label "
                             f"competitions, not target = \"{self.target}\"")
        if self.target not in KINDS[self.submission.kind].targets:
            raise ValueError(f"submission.kind \"{self.submission.kind}\" does not write the answers of target = "
                             f"\"{self.target}\" (kinds that do: {', '.join(fitting(self.target))})")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _check_metric_fits(name: str, kind: SubmissionKind, num_classes: int) -> None:
    """A metric of probabilities scores a submission of probabilities (map@K ranks labels too)."""
    metric = METRICS[name]
    if metric.scores == "probabilities" and metric.k is None and not KINDS[kind].probabilities:
        kinds = " or ".join(f'"{k.name}"' for k in KINDS.values() if k.probabilities)
        raise ValueError(f"metric '{name}' scores class probabilities: set submission.kind to {kinds} (not \"{kind}\")")
    if name == "auc" and num_classes != 2:
        raise ValueError(f"metric 'auc' scores two classes ({num_classes} here): mean_auc scores each class against the rest")


def builtin_dir() -> Path:
    return Path(str(resources.files("kaggle_flow.competitions")))


def _search_dirs() -> list[Path]:
    return [Path.cwd() / "competitions", builtin_dir()]


def competition_files() -> dict[str, Path]:
    """Name -> TOML file; the working directory's competitions/ wins over the built-in ones."""
    found: dict[str, Path] = {}
    for folder in reversed(_search_dirs()):
        if folder.is_dir():
            for file in sorted(folder.glob("*.toml")):
                found[file.stem] = file
    return dict(sorted(found.items()))


def list_competitions() -> list[str]:
    return list(competition_files())


def key_path(loc: tuple[int | str, ...]) -> list[str]:
    """The keys of a pydantic error location, without the tags it adds for union members
    ('constrained-int', "literal['auto']")."""
    return [str(p) for p in loc if isinstance(p, int) or re.fullmatch(r"[A-Za-z_]\w*", p)]


def _format_validation(file: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(key_path(first["loc"])) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{file}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{file}: missing key '{key}'"
    if first["type"] == "value_error":
        return f"{file}: {first['msg'].removeprefix('Value error, ')}"
    return f"{file}: key '{key}': {first['msg']} (got {first.get('input')!r})"


def load_file(file: Path) -> Competition:
    """Read and validate one competition TOML."""
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    for key in ("name", "path"):
        if key in raw:
            raise ConfigError(f"{file}: unknown key '{key}' (the name is the file name)")
    try:
        return Competition(name=file.stem, path=file, **raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(file, exc)) from None


def load_all() -> dict[str, Competition | ConfigError]:
    """Every competition flow knows, by name; a TOML that does not load as its ConfigError, so one
    broken file hides none of the others."""
    loaded: dict[str, Competition | ConfigError] = {}
    for name, file in competition_files().items():
        try:
            loaded[name] = load_file(file)
        except ConfigError as exc:
            loaded[name] = exc
    return loaded


def get_competition(name: str) -> Competition:
    files = competition_files()
    if name not in files:
        raise NotFoundError(f"unknown competition '{name}' (known: {', '.join(files) or 'none'})")
    return load_file(files[name])
