"""From flags to a RunConfig: the one path every training run's config is built on.

    competition (Recipe, facts)  +  Flags  +  `flow balance`  +  what the automatic recipe measured
        -> build_config -> RunConfig

`resolve_config` is what `flow train` and `flow run` call: label shuffling as the flags, `flow
balance` or the recipe say, and the `auto` values chosen from the fold's training rows and this
machine (recipe.py). `refit_config` is `--full`: the best validated run's recipe again. Every
option is checked here before any run folder exists or anything is measured.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
from pydantic import ValidationError

from kaggle_flow import console, models
from kaggle_flow.competition import Competition, Recipe
from kaggle_flow.config import Flags, RunConfig, validation_message
from kaggle_flow.data.augment import PRESETS
from kaggle_flow.engine import recipe
from kaggle_flow.engine.optim import LOSSES, OPTIMIZERS, SCHEDULES
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.explore.balance import balance_setting
from kaggle_flow.machine import device
from kaggle_flow.metrics import METRICS
from kaggle_flow.run_state import FINISHED, read_summary
from kaggle_flow.recipe_keys import LR_FIND
from kaggle_flow.target import TARGETS
from kaggle_flow.runs import Run, RunFolder, load_run, named_folders, scan_runs

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

T = TypeVar("T")

RUN_OPTIONS = tuple(k for k in Flags.model_fields if k not in Recipe.model_fields and k not in ("image_size", "max_params"))


def _either(flag: T | None, default: T) -> T:
    return default if flag is None else flag


def wanted(comp: Competition, flags: Flags) -> recipe.Choices:
    """The four values the automatic recipe decides, as the TOML and the flags give them (`auto` or a value)."""
    train = comp.train
    return recipe.Choices(
        model=_either(flags.model, train.model),
        image_size=_either(flags.final_size, comp.image_size),
        batch_size=_either(flags.batch_size, train.batch_size),
        epochs=_either(flags.epochs, train.epochs),
    )


def build_config(
    comp: Competition,
    flags: Flags | dict | None = None,
    *,
    data_dir: Path | None = None,
    facts: recipe.Facts | None = None,
    placeholders: bool = False,
    balance_reason: str = "",
) -> RunConfig:
    """The competition's Recipe overridden by `flags`, its `auto` values chosen, plus its facts.

    `auto` values are chosen from `facts` (recipe.resolve). With `placeholders`, they are left to
    training and replaced by stand-ins, so the other options can be checked before anything runs.
    Unknown keys, bad ranges and unknown registry names are one line each (a FlowError).
    """
    flags = Flags.of(flags)
    given = flags.given()
    if given.get("lr") == LR_FIND:  # found by engine/train.py once the fold is known; the recipe's stands in till then
        del given["lr"]
    choices = wanted(comp, flags)
    if placeholders and facts is None:
        choices = choices.with_stand_ins()
    run_options = {k: given[k] for k in RUN_OPTIONS if k in given}
    named_loss = "loss" in given or "loss" in comp.train.model_fields_set  # else the target's own
    loss = {} if named_loss else {"loss": TARGETS[comp.target].default_loss}
    try:
        train = Recipe(**{**comp.train.model_dump(), **loss, **{k: v for k, v in given.items() if k in Recipe.model_fields}})
        max_params = _either(flags.max_params, comp.max_params)
        chosen = recipe.resolve(choices, facts, num_classes=comp.num_classes, channels=comp.channels,
                                max_params=max_params, balance=train.balance,
                                pretrained=flags.pretrained if flags.pretrained is not None else train.pretrained or None)
        transfer, why = recipe.transfer_values(chosen, given, comp.channels)
        config = RunConfig(
            **{**train.model_dump(), **run_options, **chosen.values(), "mean": list(comp.mean), "std": list(comp.std),
               **transfer}, max_params=max_params, auto={**chosen.reasons, **why}, balance_reason=balance_reason,
            competition=comp.name, classes=list(comp.classes), target=comp.target, metric=comp.metric, channels=comp.channels,
            data_dir=str(data_dir) if data_dir is not None else None,
        )
    except ValidationError as exc:
        raise FlowError(validation_message(exc)) from None
    check_names(config)
    if chosen.note:
        console.info(chosen.note)
    return config


def check_names(config: RunConfig) -> None:
    """Every registry name and size exists: one line listing the valid names otherwise."""
    info = models.MODELS[config.model]
    for registry, name in ((PRESETS, config.preset), (OPTIMIZERS, config.optimizer), (SCHEDULES, config.schedule),
                           (LOSSES, config.loss)):
        registry[name]  # an unknown name is one line listing the valid ones
    wrong = TARGETS[config.target].wrong_loss(config.loss)
    if wrong:
        raise FlowError(wrong)
    for size in sorted(set(config.epoch_sizes())):
        models.check_size(config.model, size)
    if (config.freeze or config.freeze_epochs) and info.head is None:
        raise FlowError(f"--freeze: {config.model} has no separable classifier head")


def resolve_config(ws: Workspace, flags: Flags | dict | None, *, train_rows: pd.DataFrame | None = None) -> RunConfig:
    """The recipe with the flags, label shuffling as flags, `flow balance` and the recipe say.

    `auto` values are chosen from the fold's training rows and this machine (recipe.py); without
    `train_rows` they are left to training (the options are only checked).
    """
    flags = Flags.of(flags)
    if flags.balance is not None:
        reason = "--balance" if flags.balance else "--no-balance"
    elif (recorded := balance_setting(ws)) is not None:
        flags = flags.model_copy(update={"balance": recorded})
        reason = f"`flow balance {ws.comp.name}{'' if recorded else ' --off'}` ({ws.runs_dir / 'balance.json'})"
    else:
        reason = f"the recipe of {ws.comp.path.name}"
    flags = init_source(ws, flags, report=train_rows is not None)
    auto = wanted(ws.comp, flags).auto
    facts = recipe.measure(ws, train_rows, device()) if train_rows is not None and auto else None
    if facts is not None and "model" in auto and flags.pretrained is not False:
        facts = replace(facts, imagenet=recipe.ImagenetAtHand.here(download=flags.download is not False))
    config = build_config(ws.comp, flags, data_dir=ws.data_dir, facts=facts, placeholders=train_rows is None,
                          balance_reason=reason)
    if train_rows is not None or "model" not in auto:
        check_params(config)
    return config


def init_source(ws: Workspace, flags: Flags, *, report: bool = False) -> Flags:
    """--init-from RUN as the weights to start from: its best.pdparams, and its model where the model is auto.

    RUN is a run of any competition (a run id under runs/*/, or a run folder). Its classifier head is
    replaced when the classes differ (models.load_weights says so). Refused in one line each: another
    model than the one trained here, grey weights for RGB images, a run with no weights.
    """
    if flags.init_from is None:
        return flags
    if flags.weights is not None:
        raise FlowError("--init-from and --weights both name the weights to start from: give one")
    source = find_run(ws, flags.init_from)
    name = f"--init-from {flags.init_from}"
    if not isinstance(source, Run):
        raise FlowError(f"{name}: an ensemble, with no weights of its own: pick one of its members")
    if source.kind == "cv":
        raise FlowError(f"{name}: a cross-validation run, no weights of its own: pick one of its folds, e.g. {source.id}/fold0")
    if not source.has_weights():
        raise FlowError(f"{name}: no weights to start from ({source.best} missing, or the run failed)")
    src, model = source.config, _either(flags.model, ws.comp.train.model)
    if model not in (recipe.AUTO, src.model):
        raise FlowError(f"{name}: a {src.model} run, and this run trains {model}: give --model {src.model} or a {model} run")
    if src.channels == 1 and ws.comp.channels == 3:
        raise FlowError(f"{name}: {src.model} trained on {src.channels}-channel (grey) images, and {ws.comp.name}'s have "
                        f"{ws.comp.channels} (RGB): grey filters hold no colour; pick a run of RGB images")
    if src.channels not in (ws.comp.channels, 3):  # RGB filters are adapted to any count (models.channels)
        raise FlowError(f"{name}: {src.model} trained on {src.channels}-channel images, and {ws.comp.name}'s have "
                        f"{ws.comp.channels}: only RGB filters are adapted to another count; pick a run of "
                        f"{ws.comp.channels}-channel or RGB images")
    if report:  # the load says in one line when the head is replaced (another class count)
        console.info(f"Starting from the weights of {source.path} ({src.competition}, {src.model}, {len(src.classes)} classes)")
    return flags.model_copy(update={"weights": str(source.best), "init_from": str(source.path), "model": src.model})


def find_run(ws: Workspace, text: str) -> RunFolder:
    """A run folder by its id under runs/*/ (any competition), or by path; one line when there is none or several."""
    runs_root = ws.runs_dir.parent
    found = named_folders(text, sorted(p for p in runs_root.iterdir() if p.is_dir()) if runs_root.is_dir() else [])
    if not found:
        raise NotFoundError(f"--init-from {text}: no such run (neither a run folder nor a run id under {ws.runs_dir.parent}/*/)")
    if len(found) > 1:
        raise FlowError(f"--init-from {text}: several runs of that id ({', '.join(map(str, found))}): give the folder")
    return load_run(found[0])


def validated_source(ws: Workspace, model: str | None = None) -> Run:
    """The best validated run (of `model`, when given): what `flow train --full` refits. A damaged
    folder (config.json unreadable) whose score is unknown or at least that run's is a FlowError:
    the refit never takes another recipe in its place without a word."""
    found, damaged = scan_runs(ws.runs_dir)
    runs = [r for r in found if isinstance(r, Run) and r.kind in ("single", "cv") and r.summary.status in FINISHED]
    runs = [r for r in runs if r.summary.best_score is not None and (model is None or r.config.model == model)]
    key = METRICS[ws.comp.metric].key
    best = max((key(r.summary.best_score) for r in runs), default=None)  # type: ignore[arg-type]
    for folder in damaged:
        score = read_summary(folder.path / "summary.json")[0].best_score
        if best is None or score is None or key(score) >= best:
            raise FlowError(f"{folder.reason}; it may be the best run, so --full refits no other in its place: repair or remove {folder.path}")
    if not runs:
        which = f" of {model}" if model else ""
        raise NotFoundError(
            f"{ws.runs_dir}: no finished validated run{which} to refit; train one first (flow train {ws.comp.name}), "
            f"or give --epochs with --full"
        )
    return max(runs, key=lambda r: (key(r.summary.best_score), r.name))  # type: ignore[arg-type]


def refit_config(ws: Workspace, flags: Flags, rows: pd.DataFrame) -> RunConfig:
    """A refit on every labelled row: the best validated run's recipe for the epochs it found best.

    Flags given with --full override that recipe. With no validated run, --epochs says how long.
    """
    given = flags.model_copy(update={"full": None}).given()
    try:
        source = validated_source(ws, flags.model)
    except NotFoundError:
        if flags.epochs in (None, recipe.AUTO):
            raise
        config = resolve_config(ws, flags, train_rows=rows)
        return config.model_copy(update={"full": True, "folds": None})
    epochs = best_epoch(source)
    why = {"epochs": f"{epochs}: the best epoch of {source.id} (validation {source.config.metric} {source.summary.best_score:.4f})"}
    values = {
        **source.config.model_dump(exclude={"run", "n_folds", "auto"}), "epochs": epochs, **given,
        "full": True, "full_from": source.id, "folds": None, "fold": 0, "auto": {} if "epochs" in given else why,
    }
    try:
        config = RunConfig(**values)
    except ValidationError as exc:
        raise FlowError(validation_message(exc)) from None
    console.info(f"Refitting {source.id} on all {len(rows)} labelled images")
    return config


def best_epoch(run: Run) -> int:
    """The epoch count a run found best: its best epoch, or the folds' mean for cross-validation."""
    if run.kind == "cv":
        return max(1, round(sum(f.summary.best_epoch for f in run.folds()) / max(len(run.folds()), 1)))
    return max(1, run.summary.best_epoch)


def check_params(config: RunConfig) -> None:
    """Refuse a model over --max-params before any run folder exists (built only when there is a limit)."""
    if config.max_params is None:
        return
    model = models.create_model(config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size)
    models.check_params(models.count_params(model), config.max_params, config.model)
