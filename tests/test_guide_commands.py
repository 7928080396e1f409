"""docs/guide.md's commands, run as written (slow). Each runs through bash in an empty folder of its
own, with HOME and DISGEN_HOME there too (so ``~/small`` is a folder the test made), after the
files it names are made from real digits: ``my_digit.png`` and ``drawings/`` from mnist-mini's
test split, ``~/digits-saved`` with ``datasets``' own save_to_disk, ``~/digits/train.parquet`` with
its to_parquet, ``~/small`` and ``~/sprites-200k`` as folders of images. What each run did is
checked, not only that it ran. A command that cannot run here is listed in NOT_RUN with the reason;
test_every_guide_command_is_run_or_says_why keeps both lists whole, so a command added to the
guide fails here until it is run or explained. (Every command also parses: test_docs_commands.)"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from disgen.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
SYNOPSIS = re.compile(r"\[|\b[A-Z][A-Z_]{2,}\b(?!=)")  # [--flag], RUN_DIR, MODEL... (not VAR=value)
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist (.ci/run installs it)

# The start of each guide command that is not run here -> why.
NOT_RUN = {
    "disgen train cnn-classifier                          # default preset": "the default preset's 30 "
    "epochs on mnist-mini take minutes on 2 cores; the README's tour trains the same model on the same data "
    "for fewer epochs, as written (tests/test_readme.py)",
    "disgen train dcgan28 --dataset fashion-mnist --time-budget 600": "ten minutes; the budget is the one "
    "`disgen train cnn-classifier --time-budget 60` exercises here",
    "torchrun --nproc_per_node 4": "four processes over 50 epochs of a 64x64 GAN: hours on 2 cores; "
    "tests/test_distributed.py runs torchrun with two processes",
    "disgen train cnn-classifier --preset fast --dataset fashion-mnist": "7 epochs over 60,000 images, "
    "about ten CPU minutes (benchmarks/bench_speed.py measures it)",
    "kaggle competitions download": "a Kaggle login and a download; tests/test_kaggle.py makes a layout like it",
    "unzip -q ~/data/dog-breed": "the download above",
    "disgen kaggle-organize ~/data/dog-breed": "needs Kaggle's competition files (a Kaggle login); "
    "tests/test_kaggle.py runs the same commands on a layout made like Kaggle's",
    "disgen train resnet-transfer --preset seed --dataset ~/data/dogs": "needs Kaggle's files and "
    "ImageNet weights (a download); see tests/test_kaggle.py",
    "disgen predict runs/dogs-all": "needs the Kaggle run above; see tests/test_kaggle.py",
    "disgen train cnn-classifier --dataset hf:ylecun/mnist": "the Hugging Face Hub (no network here); "
    "tests/test_hf.py reads a name from a real datasets cache offline",
    "HF_DATASETS_OFFLINE=1 disgen train cnn-classifier --dataset hf:ylecun/mnist": "needs ylecun/mnist in "
    "the cache, which only a download puts there; tests/test_hf.py runs the offline switch on its own cache",
}


def guide_commands() -> list[str]:
    """Each command line of the guide's bash blocks (continuations joined), synopses left out."""
    lines = []
    for block in BLOCK.findall(GUIDE.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #")[0].strip()
            if command and not command.startswith("#") and not SYNOPSIS.search(command):
                lines.append(line.strip())
    return lines


def guide_line(start: str) -> str:
    """The guide's line whose command is ``start``, else the one line that starts with it."""
    lines = guide_commands()
    found = [line for line in lines if line.split(" #")[0].strip() == start]
    found = found or [line for line in lines if line.startswith(start)]
    assert len(found) == 1, f"docs/guide.md: {len(found)} commands start with {start!r}"
    return found[0]


def save_digits(folder: Path, n: int, split: str = "test", size: int | None = None, rgb: bool = False) -> list[int]:
    """The first ``n`` digits of mnist-mini's ``split`` as PNGs in one subfolder per class."""
    data = getattr(load_dataset("mnist-mini"), split)
    labels = []
    for i in range(n):
        label = int(data.labels[i])
        image = Image.fromarray(data.images[i, 0].numpy())
        if size:
            image = image.resize((size, size))
        if rgb:
            image = image.convert("RGB")
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        image.save(folder / str(label) / f"{i}.png")
        labels.append(label)
    return labels


HF_FILES = """
import sys
import datasets
from PIL import Image
from disgen.data import load_dataset
home = sys.argv[1]
data = load_dataset("mnist-mini")
names = datasets.ClassLabel(names=[str(i) for i in range(10)])
def digits(split, n):
    features = datasets.Features({"image": datasets.Image(), "label": names})
    images = [Image.fromarray(split.images[i, 0].numpy()) for i in range(n)]
    return datasets.Dataset.from_dict({"image": images, "label": split.labels[:n].tolist()}, features=features)
datasets.DatasetDict(train=digits(data.train, 600), test=digits(data.test, 200)).save_to_disk(home + "/digits-saved")
digits(data.train, 600).to_parquet(home + "/digits/train.parquet")
"""


def run(line: str, folder: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(folder / "home"),
        "DISGEN_HOME": str(folder / "disgen-home"),
        "HF_HOME": str(folder / "hf"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "DISGEN_PROGRESS_SECONDS": "1000",
    }
    done = subprocess.run(["bash", "-ec", line], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    return done


def the_run(folder: Path, pattern: str) -> Path:
    found = sorted((folder / "runs").glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())["results"][-1]


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


def test_every_guide_command_is_run_or_says_why():
    commands = guide_commands()
    assert len(commands) >= 20
    ran = {start for start, *_ in RUN}
    for line in commands:
        covered = [s for s in (*ran, *NOT_RUN) if line.startswith(s)]
        assert covered, f"docs/guide.md: `{line}` is neither run by this test nor listed in NOT_RUN with a reason"
    for start in (*ran, *NOT_RUN):
        assert any(line.startswith(start) for line in commands), f"{start!r} is no longer in docs/guide.md"


def listing(folder: Path, start: str) -> None:
    out = run(guide_line(start), folder).stdout
    if start == "disgen models":
        assert all(name in out for name in ("mlp-classifier", "cnn-classifier", "dcgan28", "aae", "vae"))
    else:
        assert all(name in out for name in ("mnist-mini", "mnist", "fashion-mnist"))


def fashion(folder: Path, start: str) -> None:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no Fashion-MNIST in {FASHION}: apt-get install dataset-fashion-mnist")
    run(guide_line(start), folder)
    model = start.split()[2]
    run_dir = the_run(folder, f"{model}-fashion-mnist-*")
    epochs = [r for r in records(run_dir) if any(k.startswith("train_") for k in r)]
    assert len(epochs) == 3
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["name"] == "fashion-mnist"
    if model == "mlp-classifier":  # the seed document's protocol: train accuracy rises over its 3 epochs
        accuracy = [r["train_accuracy"] for r in epochs]
        assert accuracy == sorted(accuracy) and accuracy[-1] > 0.8, accuracy
    else:
        mse = [r["train_mse"] for r in epochs]
        assert mse == sorted(mse, reverse=True) and mse[-1] < 0.04, mse


def budget_then_predict(folder: Path, start: str) -> None:
    """The one-minute budget run; then the guide's predict line, on that run under the name the guide
    shows, reads a real test digit and a folder of them."""
    run(guide_line("disgen train cnn-classifier --time-budget 60"), folder)
    run_dir = the_run(folder, "cnn-classifier-mnist-mini-*")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["time_budget"] == 60 and config["max_steps"] > 0
    assert final(run_dir)["accuracy"] > 0.9
    line = guide_line("disgen predict runs/cnn-classifier-mnist-mini-")
    shutil.move(run_dir, folder / shlex.split(line)[2])
    data = load_dataset("mnist-mini").test
    Image.fromarray(data.images[0, 0].numpy()).save(folder / "my_digit.png")
    labels = {"my_digit.png": int(data.labels[0])}
    for folder_label, label in enumerate(save_digits(folder / "digits-by-class", 8)):
        labels[f"{folder_label}.png"] = label
    (folder / "drawings").mkdir()
    for png in (folder / "digits-by-class").rglob("*.png"):
        shutil.copy(png, folder / "drawings" / png.name)
    rows = list(csv.reader(io.StringIO(run(line, folder).stdout)))
    header, rows = rows[0], rows[1:]
    assert header[:2] == ["input", "label"] and len(rows) == 9
    right = sum(int(row[1]) == labels[Path(row[0]).name] for row in rows)
    assert right >= 8, rows


def hf_file(folder: Path, start: str) -> None:
    if importlib.util.find_spec("datasets") is None:
        pytest.skip("the [hf] extra: pip install disgen[hf]")
    (folder / "home" / "digits").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", HF_FILES, str(folder / "home")],
        env={**os.environ, "HF_HOME": str(folder / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run(guide_line(start), folder)
    name = "digits-saved" if "digits-saved" in start else "train.parquet"
    run_dir = the_run(folder, f"cnn-classifier-{name}-*")
    info = json.loads((run_dir / "run.json").read_text())
    assert "hf" in info["data"] and info["data"]["classes"] == [str(i) for i in range(10)]
    assert final(run_dir)["accuracy"] > 0.5  # 600 digits, the default preset's 30 epochs: far above chance


def small_folder(folder: Path, start: str) -> None:
    save_digits(folder / "home" / "small", 300, split="train")
    run(guide_line(start), folder)
    run_dir = the_run(folder, "cnn-classifier-small-*")
    assert json.loads((run_dir / "config.json").read_text())["data_on_device"] == "yes"
    assert final(run_dir)["accuracy"] > 0.5


def sprites(folder: Path, start: str) -> None:
    """Both sprite lines on one folder of 64x64 colour pictures: streamed batches are the resident
    ones value for value, so the two runs end with the same test metrics."""
    save_digits(folder / "home" / "sprites-200k", 80, split="train", size=64, rgb=True)
    auto, stream = guide_line(start), guide_line(start + " --data-on-device no")
    run(auto, folder)
    first = the_run(folder, "dcgan64-sprites-200k-*")
    shutil.move(first, folder / "auto")
    run(stream, folder)
    second = the_run(folder, "dcgan64-sprites-200k-*")
    assert json.loads((second / "config.json").read_text())["data_on_device"] == "no"
    a, b = final(folder / "auto"), final(second)
    assert a["frechet_distance"] == b["frechet_distance"] and len(records(second)) >= 50


# start of the guide's line -> the check that runs it (and any lines that go with it)
RUN = [
    ("disgen models", listing),
    ("disgen datasets", listing),
    ("disgen train mlp-classifier --preset seed --dataset fashion-mnist --epochs 3", fashion),
    ("disgen train mlp-autoencoder --preset seed --dataset fashion-mnist --epochs 3", fashion),
    ("disgen train cnn-classifier --time-budget 60", budget_then_predict),
    ("disgen predict runs/cnn-classifier-mnist-mini-", None),  # run by budget_then_predict
    ("disgen train cnn-classifier --dataset ~/digits-saved", hf_file),
    ("disgen train cnn-classifier --dataset ~/digits/train.parquet", hf_file),
    ("disgen train cnn-classifier --dataset ~/small --data-on-device yes", small_folder),
    ("disgen train dcgan64 --dataset ~/sprites-200k", sprites),  # both sprite lines
]


@pytest.mark.slow
@pytest.mark.parametrize("start,check", [(s, c) for s, c in RUN if c is not None], ids=[s for s, c in RUN if c])
def test_a_guide_command_runs_as_written(start, check, folder):
    check(folder, start)
