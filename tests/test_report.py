"""``disgen report``: self-contained HTML reports of real tiny runs of each objective (classifier,
autoencoder, gan2d, dcgan28, aae), a comparison of runs, hostile config strings, pictures computed
from a checkpoint, ``--tensorboard`` event files, and the reports rendered in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import sys
from html import escape
from pathlib import Path

import pytest
from conftest import subset
from PIL import Image

import disgen
from disgen.cli import main
from disgen.data.mnist import save_idx_dir
from disgen.errors import DisgenError
from disgen.report import render, write_report
from disgen.report.svg import Series, line_chart, nice_ticks

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<script>alert("pwned")</script>&<img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A private disgen cache for the module: the dcgan28 run's reference classifier lives here."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("home")
        mp.setenv("DISGEN_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data, idx_dir, classifier_run, autoencoder_run, module_home) -> dict[str, Path]:
    """One tiny real run per objective (plus conftest's classifier and autoencoder)."""
    root = tmp_path_factory.mktemp("report-runs")
    small = subset(tiny_data, 100, 100)
    digits = save_idx_dir(root / "digits100", small.train, small.test, gz=False)
    disgen.train("gan2d", epochs=3, progress=False, run_dir=str(root / "gan2d"))
    # 100 digits: the reference classifier behind the class-coverage histogram trains in seconds.
    disgen.train(
        "dcgan28",
        dataset=str(digits),
        epochs=2,
        batch_size=50,
        progress=False,
        model_args={"g_width": 8, "d_width": 8},
        run_dir=str(root / "dcgan28"),
    )
    disgen.train(
        "aae",
        dataset=str(idx_dir),
        epochs=1,
        progress=False,
        run_dir=str(root / "aae"),
        model_args={"mode": "unsupervised", "hidden": (64, 64), "d_hidden": (32, 32), "z_dim": 2},
    )
    return {
        "classifier": classifier_run.dir,
        "autoencoder": autoencoder_run.dir,
        "gan2d": root / "gan2d",
        "dcgan28": root / "dcgan28",
        "aae": root / "aae",
    }


@pytest.fixture(scope="module")
def reports(runs, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    return {name: write_report([d], out / f"{name}.html") for name, d in runs.items()}


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory, idx_dir) -> Path:
    """A second classifier, through the CLI, with --tensorboard when tensorboard is installed."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    run_dir = tmp_path_factory.mktemp("tb") / "mlp"
    assert (
        main(
            [
                "train",
                "mlp-classifier",
                "--dataset",
                str(idx_dir),
                "--epochs",
                "2",
                "--hidden",
                "32,16",
                "--run-dir",
                str(run_dir),
                "--tensorboard",
                "--no-progress",
            ]
        )
        == 0
    )
    return run_dir


def images_of(html: str) -> list[Image.Image]:
    """Every <img> of the page, decoded; each must be an inline PNG."""
    srcs = re.findall(r'<img src="([^"]*)"', html)
    out = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        out.append(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
    return out


def frames_of(html: str) -> list[list[dict]]:
    """The frame lists of every epoch slider."""
    return [json.loads(m) for m in re.findall(r'<script type="application/json">(.*?)</script>', html, re.S)]


def last_record(run_dir: Path) -> dict:
    """The last epoch's record, with the final test record's values where the run has one."""
    from disgen import runs as run_files

    return {**run_files.read_metrics(run_dir)[-1], **(run_files.read_final(run_dir) or {})}


# ---- the HTML ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["classifier", "autoencoder", "gan2d", "dcgan28", "aae"])
def test_report_is_self_contained_with_final_metrics(reports, runs, name):
    html = reports[name].read_text()
    assert "http://" not in html and "https://" not in html  # no CDN, no link out
    links = re.findall(r"""\s(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html)  # attributes, not script
    assert links and all(link.startswith(("data:", "#")) for link in links)
    assert "url(" not in html and "@import" not in html
    pictures = images_of(html)
    assert pictures and all(im.width > 0 and im.height > 0 for im in pictures)
    for key, value in last_record(runs[name]).items():
        if key != "epoch" and isinstance(value, float):
            assert f'data-value="{value!r}"' in html, key
    assert html.count('<svg class="chart"') >= 2  # curves of the losses and metrics, and the lr
    assert 'aria-label="seconds"' not in html  # the seconds an epoch took are no metric


def test_best_metric_is_the_best_epoch(reports, runs):
    html = reports["classifier"].read_text()
    from disgen import runs as run_files

    history = run_files.read_metrics(runs["classifier"])
    best = max(history, key=lambda r: r["val_accuracy"])
    row = re.search(r"<tr><td><code>val_accuracy</code>(.*?)</tr>", html).group(1)
    assert "picks best.pt" in row
    assert f'data-value="{best["val_accuracy"]!r}"' in row and f"(epoch {best['epoch']})" in row
    loss_row = re.search(r"<tr><td><code>val_loss</code>(.*?)</tr>", html).group(1)
    assert f'data-value="{min(r["val_loss"] for r in history)!r}"' in loss_row
    final = run_files.read_final(runs["classifier"])
    section = html[html.index("test split, evaluated once after epoch 5 with checkpoints/best.pt") :]
    assert f"(epoch {best['epoch']})" in section[:200] and final["checkpoint_epoch"] == best["epoch"]
    assert f'data-value="{final["test_accuracy"]!r}"' in section
    assert "<code>test_accuracy</code>" not in html[: html.index("test split, evaluated once")]  # no test curve


def test_pictures_fit_each_model(reports, runs):
    cls = reports["classifier"].read_text()
    assert "confusion matrix on the validation split" in cls and "worst-classified validation images" in cls
    assert "rows of originals, each followed by their reconstructions" in reports["autoencoder"].read_text()
    aae = reports["aae"].read_text()
    assert "encoded z of validation images coloured by class, beside the prior" in aae
    # gan2d: one decision-surface frame before training and one per epoch, with a play button.
    (frames,) = frames_of(reports["gan2d"].read_text())
    assert [f["label"] for f in frames] == ["before training", "epoch 1", "epoch 2", "epoch 3"]
    assert len({f["src"] for f in frames}) == 4 and 'class="play"' in reports["gan2d"].read_text()
    # dcgan28: the sample grid of every epoch behind a slider, and the class-coverage histogram.
    dc = reports["dcgan28"].read_text()
    (frames,) = frames_of(dc)
    assert [f["label"] for f in frames] == ["before training", "epoch 1", "epoch 2"]
    assert 'max="2" value="2"' in dc
    assert "classes of generated images (reference classifier)" in dc


def test_hostile_strings_are_escaped(classifier_run, tmp_path):
    """Strings of config.json, run.json and metrics.jsonl show as text, never as markup."""
    run_dir = tmp_path / "hostile"
    shutil.copytree(classifier_run.dir, run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["preset"], cfg["run_dir"] = HOSTILE, HOSTILE
    (run_dir / "config.json").write_text(json.dumps(cfg))
    info = json.loads((run_dir / "run.json").read_text())
    info["data"]["classes"][0] = info["started"] = HOSTILE
    (run_dir / "run.json").write_text(json.dumps(info))
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": HOSTILE, f"val_{HOSTILE}": 0.5, "val_accuracy": HOSTILE}) + "\n")
        f.write(json.dumps({"epoch": 5, "final": True, "checkpoint": HOSTILE, f"test_{HOSTILE}": 0.5}) + "\n")
    html = render([run_dir])
    assert HOSTILE not in html and "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html and "&amp;&lt;img src=x onerror=alert(1)&gt;" in html
    assert len(re.findall(r"<script[ >]", html)) == 1  # the page's own slider script only


def test_compare_runs_side_by_side(runs, tb_run, tmp_path):
    out = write_report([runs["classifier"], tb_run], tmp_path / "compare.html")
    html = out.read_text()
    for run_dir in (runs["classifier"], tb_run):
        assert f"{escape(run_dir.name)}: final" in html
        assert f'data-value="{last_record(run_dir)["test_accuracy"]!r}"' in html
    chart = re.search(r'<svg class="chart"[^>]*aria-label="val_accuracy">.*?</svg>', html).group(0)
    assert chart.count("<polyline") == 2  # one line per run, overlaid
    diff = html[html.index('id="configuration-differences"') :]
    assert "<code>dataset</code>" in diff and "<code>model_args.hidden</code>" in diff
    assert "<code>optimizer</code>" not in diff  # the same in both runs
    assert "http://" not in html and "https://" not in html


def test_same_folder_names_are_told_apart(runs, tmp_path):
    for side in ("a", "b"):
        shutil.copytree(runs["gan2d"], tmp_path / side / "run")
    html = render([tmp_path / "a" / "run", tmp_path / "b" / "run"])
    assert str(tmp_path / "a" / "run") in html and str(tmp_path / "b" / "run") in html


# ---- pictures drawn from a checkpoint ----------------------------------------------------------


def test_missing_pictures_are_drawn_from_the_checkpoint(runs, tmp_path, capsys):
    run_dir = tmp_path / "aae"
    shutil.copytree(runs["aae"], run_dir)
    shutil.rmtree(run_dir / "images")  # as if the run was killed before its final pictures
    html = render([run_dir])
    assert "drawing pictures of" in capsys.readouterr().err
    assert "encoded z of validation images coloured by class, beside the prior" in html
    latent = re.search(r'<img src="([^"]+)" alt="encoded z of validation images coloured by class', html).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(latent.split(",", 1)[1]))).width > 300


def test_run_without_checkpoint_still_reports(runs, tmp_path):
    run_dir = tmp_path / "early"
    shutil.copytree(runs["classifier"], run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    html = render([run_dir])
    assert "Pictures that need the model could not be drawn" in html and "does not exist" in html
    assert f'data-value="{last_record(run_dir)["test_accuracy"]!r}"' in html


# ---- the command line ----------------------------------------------------------------------------


def test_cli_writes_into_the_run_dir_and_refuses_non_runs(tb_run, tmp_path, capsys):
    assert main(["report", str(tb_run)]) == 0
    err = capsys.readouterr().err
    assert f"wrote a report of {tb_run} to {tb_run / 'report.html'}" in err
    # --checkpoint auto, as every other command: the pictures are of best.pt, the test figure's
    # checkpoint (the default was last, beside a test figure of best.pt).
    assert f"drawing pictures of {tb_run} from checkpoints/best.pt" in err
    html = (tb_run / "report.html").read_text()
    assert "<title>disgen report: mlp</title>" in html and "Drawn for this report from checkpoints/best.pt" in html
    assert main(["report", str(tb_run), "--checkpoint", "last", "--out", str(tmp_path / "last.html")]) == 0
    assert f"drawing pictures of {tb_run} from checkpoints/last.pt" in capsys.readouterr().err
    best = tmp_path / "r" / "best.html"
    assert main(["report", str(tb_run), "--checkpoint", "best", "--out", str(best)]) == 0
    assert "from checkpoints/best.pt" in capsys.readouterr().err
    assert best.stat().st_size > 10_000
    assert main(["report", str(tmp_path)]) == 2
    assert "disgen: error:" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- curves ----------------------------------------------------------------------------------


def test_chart_gaps_ticks_and_values():
    svg = line_chart("loss", [Series("train_loss", [1, 2, 3, 4], [1.0, math.nan, 0.5, 0.25])])
    assert svg.count("<polyline") == 2  # the NaN breaks the line
    assert svg.count("<circle") == 3 and "<title>train_loss, epoch 4: 0.25</title>" in svg
    assert nice_ticks(0.97, 2.03, 6) == [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]
    assert nice_ticks(0.25, 1.0) == [0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-0.003, 0.0021) == [-0.002, 0.0, 0.002]
    assert "no finite values" in line_chart("x", [Series("a", [1], [None])])


def test_curves_leave_out_the_seconds_chart_a_metric_once_and_go_log_where_flat(reports, runs):
    """curves.png and the report plotted `seconds` and `eval_seconds` as metrics, and gan2d's
    w2_squared and frechet_distance (one number) twice, on a linear scale that flattened."""
    from disgen.viz import curve_panels, wants_log

    history = disgen.runs.read_metrics(runs["gan2d"])
    panels = curve_panels(history)
    titles = [t for t, _, _ in panels]
    assert "val_w2_squared = val_frechet_distance" in titles and not any("seconds" in t for t in titles)
    assert not any(t.startswith("val_frechet_distance") for t in titles)
    html = reports["gan2d"].read_text()
    assert "gaussian2d, points of 2 numbers, 1 class<" in html  # was "images [2], 1 classes"
    assert 'aria-label="seconds"' not in html and 'aria-label="frechet_distance"' not in html
    assert 'aria-label="w2_squared"' in html and "val_w2_squared = val_frechet_distance" in html
    falling = [5.0, 0.9, 0.2, 0.05, 0.012]  # a distance that falls 400-fold: flat on a linear axis
    assert wants_log(falling) and not wants_log([0.9, 0.95, 0.97]) and not wants_log([-1.0, 5.0])
    svg = line_chart("w2_squared", [Series("val_w2_squared", [1, 2, 3, 4, 5], falling)], log=True)
    ticks = re.findall(r'class="tick"[^>]*text-anchor="end">([^<]+)<', svg)
    assert "w2_squared (log scale)" in svg and {"0.01", "0.1", "1"} <= set(ticks)


# ---- --tensorboard --------------------------------------------------------------------------------


def test_tensorboard_event_files_hold_the_metrics(tb_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run / "tensorboard"), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/accuracy", "val/accuracy", "val/loss", "lr"} <= set(tags["scalars"])
    from disgen import runs as run_files

    history = run_files.read_metrics(tb_run)
    logged = [(e.step, e.value) for e in acc.Scalars("val/accuracy")]
    assert logged == [(r["epoch"], pytest.approx(r["val_accuracy"], rel=1e-6)) for r in history]
    assert "model/fc.weight" in tags["histograms"]
    assert {"images/train_batch", "images/predictions_after"} <= set(tags["images"])


def test_tensorboard_missing_is_a_clear_error(tmp_path, idx_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(DisgenError, match="pip install tensorboard"):
        disgen.train(
            "mlp-classifier",
            dataset=str(idx_dir),
            epochs=1,
            progress=False,
            tensorboard=True,
            run_dir=str(tmp_path / "run"),
        )
    assert not (tmp_path / "run" / "config.json").exists()  # refused before anything is written


# ---- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    local = ("file:", "data:")
    page.on("request", lambda r: None if r.url.startswith(local) else errors.append(f"request {r.url}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def check_rendered(page) -> None:
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert widths and min(widths) > 0, widths
    boxes = page.eval_on_selector_all(
        "svg.chart", "els => els.map(e => e.getBoundingClientRect()).map(r => r.width * r.height)"
    )
    assert boxes and min(boxes) > 0


@pytest.mark.parametrize("name", ["classifier", "gan2d", "aae"])
def test_browser_renders_report(browser, reports, name):
    page, errors = open_page(browser, reports[name])
    check_rendered(page)
    assert errors == []
    page.close()


def test_browser_slider_changes_the_sample_grid(browser, reports):
    page, errors = open_page(browser, reports["dcgan28"])
    check_rendered(page)
    grid = page.locator("figure.frames img")
    last = grid.get_attribute("src")
    page.locator("figure.frames input[type=range]").focus()
    page.keyboard.press("Home")  # the first frame, as a user drags the slider to the left
    assert page.locator("figure.frames .frame-label").inner_text() == "before training"
    first = grid.get_attribute("src")
    assert first != last and page.evaluate("document.querySelector('figure.frames img').naturalWidth") > 0
    page.keyboard.press("ArrowRight")
    assert page.locator("figure.frames .frame-label").inner_text() == "epoch 1"
    assert grid.get_attribute("src") not in (first, last)
    assert errors == []
    page.close()


def test_browser_plays_the_gan2d_animation(browser, reports):
    page, errors = open_page(browser, reports["gan2d"])
    label = page.locator("figure.frames .frame-label")
    assert label.inner_text() == "epoch 3"
    page.locator("figure.frames button.play").click()
    page.wait_for_function(
        "document.querySelector('figure.frames .frame-label').textContent != 'epoch 3'", timeout=5000
    )
    assert label.inner_text() in ("before training", "epoch 1")
    assert page.locator("figure.frames button.play").inner_text() == "pause"
    assert errors == []
    page.close()


def test_browser_renders_comparison(browser, runs, tb_run, tmp_path):
    out = write_report([runs["classifier"], tb_run], tmp_path / "compare.html")
    page, errors = open_page(browser, out)
    charts = page.eval_on_selector_all("svg.chart", "els => els.length")
    assert charts >= 4
    boxes = page.eval_on_selector_all("svg.chart polyline", "els => els.map(e => e.getBBox().width)")
    assert boxes and min(boxes) > 0
    assert errors == []
    page.close()
