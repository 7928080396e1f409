"""Screenshots of `disgen serve` for the docs, taken with Debian's headless Chromium:

    docs/img/serve_classifier.png   a "7" drawn with the mouse and the class probabilities
    docs/img/serve_generator.png    a supervised aae: a sample, its digit and style sliders, and an
                                    interpolation between two seeds

    python scripts/screenshot_serve.py [--classifier RUN_DIR] [--generator RUN_DIR] [--out docs/img]

Without run directories it first trains them on the bundled mnist-mini in a temporary folder
(mlp-classifier for 10 epochs, aae --mode supervised for 10 epochs: about 2 minutes on 2 CPU
cores). Needs the dev extra (playwright) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import disgen
from disgen.serve import make_app, serving

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1100, "height": 760}
SEVEN = [(85, 60), (195, 60), (165, 120), (125, 225)]  # one stroke, canvas pixels


def train_runs(root: Path) -> tuple[Path, Path]:
    classifier = disgen.train(
        "mlp-classifier", dataset="mnist-mini", epochs=10, progress=False, run_dir=str(root / "mlp-classifier")
    )
    generator = disgen.train(
        "aae",
        dataset="mnist-mini",
        epochs=10,
        progress=False,
        model_args={"mode": "supervised"},
        run_dir=str(root / "aae-supervised"),
    )
    return classifier.dir, generator.dir


def stroke(page, points) -> None:
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def open_page(browser, url: str):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return page


def shoot_classifier(browser, run_dir: Path, out: Path) -> str:
    with serving(make_app(run_dir)) as url:
        page = open_page(browser, url)
        stroke(page, SEVEN)
        page.wait_for_selector("#prediction:not(:empty)")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out), full_page=True)
        return page.inner_text("#prediction")


def shoot_generator(browser, run_dir: Path, out: Path) -> None:
    with serving(make_app(run_dir)) as url:
        page = open_page(browser, url)
        page.select_option("#label", "3")
        page.fill("#seed", "7")
        page.dispatch_event("#seed", "change")
        page.fill("#seed-a", "11")
        page.fill("#seed-b", "12")
        page.fill("#steps", "10")
        page.click("#interpolate")
        page.wait_for_selector("#interpolation img >> nth=9")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out), full_page=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classifier", type=Path, help="a classifier run (default: train one)")
    p.add_argument("--generator", type=Path, help="a supervised aae run (default: train one)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        classifier, generator = args.classifier, args.generator
        if classifier is None or generator is None:
            trained = train_runs(Path(tmp))
            classifier, generator = classifier or trained[0], generator or trained[1]
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            label = shoot_classifier(browser, classifier, args.out / "serve_classifier.png")
            shoot_generator(browser, generator, args.out / "serve_generator.png")
            browser.close()
    print(
        f"wrote {args.out}/serve_classifier.png (the drawn 7 read as {label}) and {args.out}/serve_generator.png",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
