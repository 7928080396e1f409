"""Regenerate the screenshots of ``disgen report`` in README.md and docs/report.md.

    python scripts/screenshot_report.py [--work runs/report-shots] [--out docs/img]

Trains small real runs on the bundled mnist-mini digits and the 2-D Gaussian, unless ``--work``
already holds them (a cnn-classifier for 4 epochs, dcgan28's default preset for its 30 epochs, gan2d
for its 20 epochs: minutes on a laptop CPU, plus the reference classifier of the GAN metrics, trained once
and cached), writes their reports and a comparison, and photographs them with headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright) at 1200 px wide:

    report_classifier.png   summary, metrics and curves of the classifier
    report_pictures.png     its confusion matrix and worst-classified digits
    report_gan.png          dcgan28: the epoch slider over sample grids, class coverage
    report_gan2d.png        gan2d: the animated decision surface (its last frame)
    report_compare.png      the classifier against a second one, curves overlaid
"""

from __future__ import annotations

import argparse
from pathlib import Path

import disgen
from disgen.report import write_report

ROOT = Path(__file__).resolve().parent.parent
RUNS = {  # name -> (model, TrainConfig options)
    "cnn-classifier": ("cnn-classifier", {"epochs": 4}),
    "mlp-classifier": ("mlp-classifier", {"epochs": 4}),
    "dcgan28": ("dcgan28", {}),  # the default preset: 30 epochs
    "gan2d": ("gan2d", {}),
}
WIDTH = 1200


def train_missing(work: Path) -> dict[str, Path]:
    out = {}
    for name, (model, options) in RUNS.items():
        run_dir = work / name
        if not (run_dir / "images" / "curves.png").exists():  # written last: the run completed
            disgen.train(
                model,
                dataset="mnist-mini" if model != "gan2d" else "gaussian2d",
                seed=0,
                progress=False,
                run_dir=str(run_dir),
                resume=run_dir.exists(),
                **options,
            )
        out[name] = run_dir
    return out


def clip(page, first: str, last: str, path: Path) -> None:
    """Screenshot from the top of the first match of CSS selector ``first`` to the bottom of the
    first match of ``last``."""
    scroll = page.evaluate("window.scrollY")  # boxes are relative to the viewport, clips to the page
    top = page.locator(first).first.bounding_box()["y"] + scroll
    box = page.locator(last).first.bounding_box()
    bottom = box["y"] + scroll + box["height"] + 8
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": top, "width": WIDTH, "height": bottom - top})
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "report-shots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    runs = train_missing(args.work)
    reports = {name: write_report([d], d / "report.html") for name, d in runs.items()}
    reports["compare"] = write_report([runs["cnn-classifier"], runs["mlp-classifier"]], args.work / "compare.html")
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})

        def show(name: str) -> None:
            page.goto(reports[name].resolve().as_uri())
            page.wait_for_load_state("load")

        show("cnn-classifier")
        clip(page, "header", "#curves", args.out / "report_classifier.png")
        worst = "#pictures .figures > figure:nth-child(2)"  # below the confusion matrix
        clip(page, "#pictures h2", worst, args.out / "report_pictures.png")
        show("dcgan28")
        page.locator("figure.frames input[type=range]").focus()
        page.keyboard.press("ArrowLeft")  # a step back from the last epoch: the slider in use
        clip(page, "#pictures h2", "#pictures .figures", args.out / "report_gan.png")
        show("gan2d")
        clip(page, "#pictures h2", "#pictures .figures", args.out / "report_gan2d.png")
        show("compare")
        clip(page, "header", "#curves .figures > figure:nth-child(3)", args.out / "report_compare.png")
        browser.close()


if __name__ == "__main__":
    main()
