"""The keys of a competition's training recipe, each declared once: type, default, range, help, flag.

Everything that names a recipe key is derived from `RECIPE_KEYS`:

    competition.Recipe     the TOML's [train] table: pydantic fields with these ranges and descriptions
    config.Flags           what `flow train`'s flags set: the same keys, each optional (None: not given)
    cli/options.py         the `flow train` / `flow run` options: flag, metavar and --help text

so a key added here is a TOML key, a flag and a RunConfig field at once (tests/test_recipe_keys.py
walks them). Only the standard library is imported: `flow --help` builds its options from this
module without loading pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

RECIPE_DEFAULT = "the recipe"  # where a flag left out takes its value from
LR_FIND = "find"  # --lr find: the learning-rate finder's suggestion (engine/lr_find.py), found once the fold is known


@dataclass(frozen=True)
class RecipeKey:
    """One key of the recipe. Numbers are range-checked (ge/gt/le/lt) and finite; `many`: a list of them."""

    name: str  # the TOML key, the RunConfig field; the flag is --name-with-dashes unless `flag` says otherwise
    type: type  # int, float, str or bool (of each value, when `many`)
    default: Any
    help: str  # the description of the TOML key and the --help of its flag
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    many: bool = False  # a list of values; the flag takes them separated by commas
    words: tuple[str, ...] = ()  # words the key takes besides a number, in the TOML and as a flag ("auto")
    flag_words: tuple[str, ...] = ()  # words only the flag takes ("find": resolved before the run's config exists)
    choices: tuple[str, ...] = ()  # the names of the registry the value is looked up in, shown by --help
    unset: str = RECIPE_DEFAULT  # what a flag left out means
    flag: str | None = None
    metavar: str | None = None

    @property
    def option(self) -> str:
        """The flag: --name-with-dashes, or --key/--no-key for a switch."""
        name = self.flag or "--" + self.name.replace("_", "-")
        return f"{name}/--no-{name[2:]}" if self.type is bool else name

    @property
    def flag_name(self) -> str:
        return self.option.split("/")[0]

    @property
    def flag_type(self) -> Any:
        """The type a flag's value has in config.Flags (its words included; ranges are RunConfig's to check)."""
        words = (*self.words, *self.flag_words)
        base: Any = list[self.type] if self.many else self.type  # type: ignore[name-defined]
        return Union[base, Literal[words], None] if words else Union[base, None]

    def range_text(self) -> str:
        """The range as click writes one: x>=0, x>0, 0<=x<1 ("" when there is none)."""
        low = f"{_num(self.ge)}<=" if self.ge is not None else f"{_num(self.gt)}<" if self.gt is not None else ""
        high = f"<={_num(self.le)}" if self.le is not None else f"<{_num(self.lt)}" if self.lt is not None else ""
        if low and not high:
            return f"x>={_num(self.ge)}" if self.ge is not None else f"x>{_num(self.gt)}"
        return f"{low}x{high}" if low or high else ""

    def help_text(self) -> str:
        """The --help of the flag: the description, the choices or the range, and where the default comes from."""
        text = self.help + (f": {', '.join(self.choices[:-1])} or {self.choices[-1]}" if self.choices else "")
        if self.range_text():
            text += f" [{self.range_text()}{' each' if self.many else ''}]"
        return f"{text} (default: {self.unset}, else {self.default_text})."

    @property
    def default_text(self) -> str:
        if self.type is bool:
            return "on" if self.default else "off"
        if self.many:
            return ",".join(map(str, self.default)) or "none"
        return _num(self.default) if isinstance(self.default, (int, float)) else str(self.default)


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_AUTO = "chosen by the automatic recipe"

RECIPE_KEYS: tuple[RecipeKey, ...] = (
    RecipeKey("model", str, "auto", f"Model name, see `flow models`; auto: {_AUTO}"),
    RecipeKey("epochs", int, "auto", f"Epochs; auto: {_AUTO}", ge=1, words=("auto",), metavar="N|auto"),
    RecipeKey("batch_size", int, "auto", "Images per step and process (with --nproc N the global batch is N times that); "
              f"auto: {_AUTO}", ge=1, words=("auto",), metavar="N|auto"),
    RecipeKey("lr", float, 3e-4, "Peak learning rate, reached after the warmup; as a flag also 'find': the suggestion "
              "of `flow lr-find`, run first; see --scale-lr for several processes", gt=0, flag_words=(LR_FIND,), metavar="LR|find"),
    RecipeKey("optimizer", str, "adam", "Optimizer", choices=("adam", "adamw", "sgd")),
    RecipeKey("weight_decay", float, 0.0, "Weight decay", ge=0),
    RecipeKey("schedule", str, "cosine", "Learning-rate schedule after the warmup", choices=("cosine", "step", "constant")),
    RecipeKey("warmup_epochs", float, 1.0, "Linear warmup from 0, in epochs", ge=0),
    RecipeKey("label_smoothing", float, 0.1, "Label smoothing epsilon", ge=0, lt=1),
    RecipeKey("loss", str, "ce", "Loss (one label an image: cross entropy, class-weighted or focal; target = multi: "
              "binary cross entropy, the default there, focal or asymmetric)", choices=("ce", "weighted", "focal", "bce", "asl")),
    RecipeKey("focal_gamma", float, 2.0, "Focal loss exponent, with --loss focal (0: cross entropy)", ge=0),
    RecipeKey("preset", str, "light", "Augmentation preset, see `flow augment --list`"),
    RecipeKey("mixup", float, 0.0, "Mixup: the parameter a of Beta(a, a); 0 = off", ge=0),
    RecipeKey("cutmix", float, 0.0, "CutMix: the parameter a of Beta(a, a); 0 = off", ge=0),
    RecipeKey("erasing", float, 0.0, "Random erasing probability", ge=0, le=1),
    RecipeKey("cutout", float, 0.0, "Cutout probability", ge=0, le=1),
    RecipeKey("gridmask", float, 0.0, "GridMask probability", ge=0, le=1),
    RecipeKey("ema", float, 0.0, "Decay of the weights' moving average, e.g. 0.999; 0 = off", ge=0, lt=1),
    RecipeKey("balance", bool, False, "Label shuffling: every class as often as the largest, redrawn each epoch",
              unset=f"`flow balance`, else {RECIPE_DEFAULT}"),
    RecipeKey("sizes", int, [], "Progressive resizing in px, e.g. 64,128,224: the epochs divided among the sizes; "
              "the last is the final size", ge=1, many=True, metavar="PX,PX,..."),
    RecipeKey("patience", int, 0, "Stop after N epochs without improvement; 0 = never", ge=0, metavar="N"),
    RecipeKey("pretrained", bool, False, "Start from ImageNet weights",
              unset="the automatic recipe does on RGB photos when the weights are here or can be downloaded "
                    f"(see `flow weights`), else {RECIPE_DEFAULT}"),
    RecipeKey("freeze", bool, False, "Train only the classifier head; the backbone stays as loaded"),
    RecipeKey("freeze_epochs", int, 0, "Train only the head for N epochs, then every layer (fine-tuning)", ge=0, metavar="N"),
    RecipeKey("seed", int, 42, "Random seed: paddle, numpy and Python are seeded from it (numpy's range); "
              "the same seed repeats a CPU run", ge=0, le=2**32 - 1),
)
KEYS: dict[str, RecipeKey] = {key.name: key for key in RECIPE_KEYS}


def flag_of(key: str) -> str:
    """The flag that sets a RunConfig key: a recipe key's declared flag, --size for the image size, else --key-name."""
    if key in KEYS:
        return KEYS[key].flag_name
    return "--size" if key == "image_size" else "--" + key.replace("_", "-")
