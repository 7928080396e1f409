"""The pictures of ``disgen report``, per objective, as inline HTML.

Pictures the run already drew (RUN_DIR/images, RUN_DIR/samples) are reused. What the run does not
hold is computed from a checkpoint, on the CPU and in inference mode, on the validation split of
the run's own dataset (its test split for a run without one), with the same drawing functions
training uses: the objective's ``snapshot`` at
"after" (when the run's own final pictures are missing or older than its last checkpoint, or
another checkpoint is asked for) and its ``report_pictures`` (a classifier's confusion matrix and
worst-classified images, an image GAN's class-coverage histogram). The objective's ``pictures``
name and order the section's figures; the rest of images/ goes under "other pictures".
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Callable

from disgen.errors import DisgenError
from disgen.objectives import Context, get_objective
from disgen.report.svg import escape

SMALL = 320  # px: pictures narrower than this are shown at twice their size
FRAME = re.compile(r"(?:decision_)?epoch_(\d+)\.png$")
Log = Callable[[str], None]


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# -- HTML pieces -----------------------------------------------------------------------------------
def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def img(path: Path, alt: str) -> str:
    """An inline <img>; small pictures (grids of 28-pixel digits) are shown at twice their size."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    zoom = 2 if w < SMALL else 1
    return f'<img src="{data_uri(path)}" alt="{escape(alt)}" width="{w * zoom}" height="{h * zoom}"' + (
        ' class="zoom">' if zoom > 1 else ">"
    )


def figure(title: str, inner: str) -> str:
    return f"<figure>{inner}<figcaption>{escape(title)}</figcaption></figure>"


def frames_widget(frames: list[tuple[str, Path]], title: str, play: bool = False) -> str:
    """One picture at a time with a slider over ``frames`` (label, PNG), starting at the last;
    ``play``: a button that steps through them (the page's script drives both)."""
    data = json.dumps([{"label": label, "src": data_uri(path)} for label, path in frames])
    data = data.replace("<", "\\u003c")  # no "</script>" can end the data block early
    last = len(frames) - 1
    button = '<button type="button" class="play">play</button>' if play else ""
    return (
        f'<figure class="frames">{img(frames[-1][1], title)}'
        f'<div class="frame-controls">{button}<input type="range" min="0" max="{last}" '
        f'value="{last}" aria-label="{escape(title)}: frame">'
        f'<span class="frame-label">{escape(frames[-1][0])}</span></div>'
        f'<script type="application/json">{data}</script>'
        f"<figcaption>{escape(title)}</figcaption></figure>"
    )


def epoch_frames(paths: list[Path]) -> list[tuple[str, Path]]:
    """("epoch N", path) for files named ``epoch_NNN.png`` / ``decision_epoch_NNN.png``, in order."""
    found = [(int(m.group(1)), p) for p in paths if (m := FRAME.search(p.name))]
    return [(f"epoch {e}", p) for e, p in sorted(found)]


# -- computing pictures from a checkpoint ---------------------------------------------------------
def is_fresh(run_dir: Path) -> bool:
    """Whether the run's "after" pictures show its last checkpoint: training draws them, then
    curves.png, once it completes; a later resumed epoch makes last.pt newer."""
    curves, last = run_dir / "images" / "curves.png", run_dir / "checkpoints" / "last.pt"
    return curves.exists() and (not last.exists() or curves.stat().st_mtime >= last.stat().st_mtime)


def load_context(run_dir: Path, checkpoint: str, out_dir: Path):
    """(Run, TensorDataset, Context) of ``checkpoint`` on the CPU, ``out_dir`` for its pictures."""
    import disgen
    from disgen.data import to_float

    run = disgen.load(run_dir, checkpoint, device="cpu")
    data = run.dataset()  # split as the run was: the same validation images
    vr = run.spec.value_range
    held_out, name = (data.val, "validation") if data.val is not None else (data.test, "test")
    ctx = Context(
        run.nets,
        to_float(data.train.images[:1000], vr),
        to_float(held_out.images, vr),
        held_out.labels,
        list(run.classes),
        vr,
        out_dir,
        name,
        run.spec.model_config(run.config.model_args),
    )
    return run, data, ctx


def computed_pictures(run_dir: Path, checkpoint: str, objective: str, tmp: Path, log: Log) -> dict[str, Path]:
    """Pictures drawn now from ``checkpoint`` into ``tmp`` (name -> PNG); see the module doc."""
    obj = get_objective(objective)
    need_snapshot = checkpoint != "last" or not is_fresh(run_dir)
    if not (need_snapshot or obj.report_pictures):
        return {}
    run, data, ctx = load_context(run_dir, checkpoint, tmp / "images")
    out = tmp / "images"
    out.mkdir(parents=True, exist_ok=True)
    log(f"drawing pictures of {run_dir} from checkpoints/{checkpoint}.pt")
    if need_snapshot and run.objective.snapshot:
        run.objective.snapshot(ctx, "after")
    if obj.report_pictures:
        if obj.eval_context:  # its pictures measure with what its evaluation does (a GAN's reference classifier)
            from disgen.training.trainer import train_reference

            train_reference(data, log)
        obj.report_pictures(run, data, ctx, log)
    found = {p.name: p for p in sorted(out.glob("*.png"))}
    final = tmp / "samples" / "final.png"  # an image GAN's snapshot writes its grid beside images/
    if final.exists():
        found["samples_final.png"] = final
    return found


# -- the pictures section of one run ---------------------------------------------------------------
def held_out_split(run_dir: Path) -> str:
    """Which split the run's pictures show: "validation" where the run has one, else "test"."""
    from disgen.data import splits

    try:
        info = splits.read(run_dir)
    except DisgenError:
        info = None
    return "validation" if info is not None and info.get("sizes", {}).get("val", 0) else "test"


def pictures_html(run_dir: Path, objective: str, checkpoint: str, tmp: Path, log: Log = stderr) -> str:
    """The run's pictures as HTML figures: per-epoch sliders, the objective's pictures, the rest."""
    pics = {p.name: p for p in sorted((run_dir / "images").glob("*.png")) if p.name != "curves.png"}
    if (run_dir / "samples" / "final.png").exists():
        pics["samples_final.png"] = run_dir / "samples" / "final.png"
    try:
        computed = computed_pictures(run_dir, checkpoint, objective, tmp, log)
        note = (
            (
                f'<p class="note">Drawn for this report from checkpoints/{checkpoint}.pt: '
                f"{escape(', '.join(computed))}.</p>"
            )
            if computed
            else ""
        )
        pics.update(computed)
    except DisgenError as err:  # e.g. no checkpoint yet, or the dataset is not on this machine
        note = f'<p class="note">Pictures that need the model could not be drawn: {escape(str(err))}</p>'
    parts = []
    samples = epoch_frames(sorted((run_dir / "samples").glob("epoch_*.png")))
    if samples:
        before = run_dir / "samples" / "before.png"
        samples = ([("before training", before)] if before.exists() else []) + samples
        parts.append(frames_widget(samples, "samples of the same z after each epoch"))
    decisions = epoch_frames([p for p in pics.values() if p.name.startswith("decision_epoch_")])
    if decisions:
        before = [("before training", pics["decision_before.png"])] if "decision_before.png" in pics else []
        parts.append(
            frames_widget(
                before + decisions,
                "real (blue) and generated (orange) points over the discriminator's D(x), per epoch",
                play=True,
            )
        )
    shown = {p.name for _, p in samples + decisions}
    if decisions:
        shown.add("decision_before.png")
    if checkpoint == "last":  # the last frame already shows the final networks
        shown |= {"decision_after.png"} if decisions else set()
        shown |= {"samples_final.png"} if samples else set()
    held_out = held_out_split(run_dir)
    for name, title in get_objective(objective).pictures:  # in the order a section shows them
        title = title.format(split=held_out)
        if name in pics and name not in shown:
            parts.append(figure(title, img(pics[name], title)))
            shown.add(name)
    main = "".join(parts)
    rest = "".join(figure(name, img(p, name)) for name, p in pics.items() if name not in shown)
    html = note + (f'<div class="figures">{main}</div>' if main else "")
    if rest:
        html += f'<h3>Other pictures of the run</h3><div class="figures">{rest}</div>'
    return html or '<p class="note">This run has no pictures yet.</p>'
