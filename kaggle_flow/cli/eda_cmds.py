"""Commands: eda."""

from __future__ import annotations

from typing import Any

from kaggle_flow.cli.app import CompArg, DataOpt, NearOpt, StrictOpt, app

SHOWN_PAIRS = 5  # near pairs of each kind printed; near_duplicates.csv has them all


def _distribution(d: dict[str, float], digits: int = 0) -> str:
    if not d:
        return "-"
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(d['min'])} / {fmt.format(d['median'])} / {fmt.format(d['max'])}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _title(report: dict[str, Any]) -> str:
    """The class table's title: the images read and, when some are broken, how many of them the
    table leaves out, so its counts add up to the number it names."""
    from kaggle_flow.console import plural
    from kaggle_flow.table.layouts import describe_counts

    n = report["images"]
    in_table = report["labelled"]
    left_out = n["train"] + n["valid"] - in_table
    parts = [f"{report['competition']}: {describe_counts(n)}"]
    if left_out:
        what = "labelled" if n["valid"] else "training"
        parts.append(f"{plural(left_out, f'broken {what} image')} left out: {in_table} in the table")
    if n["broken"] > left_out:
        parts.append(f"{plural(n['broken'] - left_out, 'broken test image')}")
    return "; ".join(parts)


def _show_near(near: dict[str, Any], pairs_file: str) -> None:
    """The near twins: what was found and what to do about it, then the closest conflicting pairs and leaks."""
    from kaggle_flow import console
    from kaggle_flow.console import plural

    head = (f"Near duplicates (perceptual hashes within {near['near']} bits of 64, --near N): "
            f"every pair in {pairs_file}, the closest drawn in near_duplicates.png")
    if not near["within_train"] and not near["train_test"]:
        console.info(f"{head}: none")
        return
    console.table(head, ["near twins", "count", "what to do"], [
        ("pairs among the labelled images", near["within_train"],
         f"{plural(near['groups'], 'group')} of {plural(near['grouped_images'], 'image')}; `flow split` keeps each in one fold"),
        ("of them with different labels", near["conflicting"],
         "a label is likely wrong: fix the CSV or `flow review --exclude FILE`"),
        ("test images with a labelled twin", near["test_images_with_twin"], "a leak: the twin's label is likely theirs"),
    ])
    conflicting = near["conflicting_pairs"][:SHOWN_PAIRS]
    if conflicting:
        console.table(f"Near twins with different labels, closest first ({len(conflicting)} of {near['conflicting']})",
                      ["image", "its label", "twin", "twin's label", "bits apart"],
                      [(p["a"], p["label_a"], p["b"], p["label_b"], p["distance"]) for p in conflicting])
    leaks = near["test_twins"][:SHOWN_PAIRS]
    if leaks:
        console.table(f"Test images with a labelled twin, closest first ({len(leaks)} of {near['test_images_with_twin']})",
                      ["test image", "labelled twin", "its label", "bits apart"],
                      [(t["test"], t["train"], t["label"], t["distance"]) for t in leaks])


def _show(report: dict[str, Any]) -> None:
    import pandas as pd

    from kaggle_flow import console
    from kaggle_flow.console import plural
    from kaggle_flow.explore.eda import describe_broken

    rows = [(c["class"], c["count"], f"{c['share']:.1%}") for c in report["classes"]]
    console.table(_title(report), ["class", "count", "share"], rows)
    if "labels_per_image" in report:  # a multi-label target
        per_image = ", ".join(f"{n}: {c}" for n, c in report["labels_per_image"].items())
        console.info(f"Labels per image (classes an image holds: images): {per_image}")
    ratio = report["imbalance_ratio"]
    if ratio:
        console.info(f"Imbalance ratio (largest / smallest class): {ratio:.2f}")
    else:
        console.info("Imbalance ratio: a class has no images")

    sizes = report["sizes"]
    common = ", ".join(f"{s['size']} ({s['count']})" for s in sizes["common"]) or "-"
    console.info(f"Width min/median/max: {_distribution(sizes['width'])}; height: {_distribution(sizes['height'])}; "
                 f"aspect: {_distribution(sizes['aspect'], 2)}")
    console.info(f"Sizes: {sizes['distinct_sizes']} distinct; most common: {common}")
    console.info(f"Modes: {_counts(report['modes'])}")
    console.info(f"Formats: {_counts(report['formats'])}")

    unusual = report["warnings"]["unusual_mode"]
    if unusual["count"]:
        first = unusual["examples"][0]
        console.warn(f"{plural(unusual['count'], 'image')} in an unusual mode ({_counts(unusual['by_mode'])}), "
                     f"e.g. {first['id']}: {first['note']}")
    rotated = report["warnings"]["exif_rotated"]
    if rotated["count"]:
        names = ", ".join(e["id"] for e in rotated["examples"][:5])
        more = f" and {rotated['count'] - 5} more" if rotated["count"] > 5 else ""
        console.warn(f"{plural(rotated['count'], 'image')} with an EXIF rotation (orientation != 1): {names}{more}")

    dup = report["duplicates"]
    console.info(
        f"Exact duplicates: {plural(dup['train_groups'], 'group')} in the labelled images "
        f"({plural(dup['train_extra'], 'extra copy', 'extra copies')}), "
        f"{dup['conflicting_groups']} with conflicting labels; {plural(dup['test_groups'], 'group')} in test; "
        f"{plural(dup['train_test'], 'test image')} also labelled"
    )
    for group in dup["conflicting"][:5]:
        console.warn("same image, different labels: " + ", ".join(f"{g['id']} ({g['label']})" for g in group))
    if dup["conflicting_groups"] > 5:
        console.warn(f"{dup['conflicting_groups'] - 5} more groups with conflicting labels in the report")
    files = report["files"]
    _show_near(report["near_duplicates"], files["near_duplicates"])
    if report["broken"]:
        broken = pd.DataFrame(report["broken"])
        console.warn(f"{plural(len(broken), 'broken image')} left out of later steps: {describe_broken(broken)}")
    console.info(f"Saved {files['report']}, {files['broken']}, {files['images']}")
    pictures = ("class_histogram", "labels_per_image", "co_occurrence", "sizes", "modes", "near_gallery")
    console.info(f"Plots: {', '.join(files[p] for p in pictures if p in files)}")


@app.command("eda")
def eda_cmd(comp: CompArg = None, data: DataOpt = None, strict: StrictOpt = False, near: NearOpt = None) -> None:
    """Class counts, image sizes, modes and formats, broken images, exact and near duplicates;
    multi-label: labels per image and which classes occur together (co_occurrence.png).

    Reads the image headers, and decodes each image once for its perceptual hash (cached in
    runs/COMP/eda/hashes.csv): near twins within --near N bits go to near_duplicates.csv and .png.
    Broken images (unreadable, zero-byte, not an image, truncated)
    go to runs/COMP/eda/broken.csv and are left out of every later step; with --strict they are an
    error. The report and plots are saved in runs/COMP/eda/.

    Examples: flow eda lemon --data ~/data/lemon_lesson ; flow eda mnist --near 0
    """
    from kaggle_flow.explore.eda import run_eda
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    ensure_writable(ws.eda_dir())  # before the scan, not after it
    _show(run_eda(ws, strict=strict, near=near))
