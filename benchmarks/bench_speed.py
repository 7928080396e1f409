"""Training speed of disgen's Trainer against plain PyTorch ports of the seed documents' code,
written the way tutorials do: a per-sample ``Dataset`` that converts each uint8 image to float in
``__getitem__``, ``DataLoader(batch_size, shuffle=True)`` with no workers, float32 NCHW,
optimizers created the default way (not fused), ``opt.zero_grad(); loss.backward(); opt.step()``,
and the seed's own architecture and loss. Each port computes the same function as disgen's ``seed``
preset of that model (same layers, losses, optimizers and batch size), so the ratio is what the
Trainer's loop, data path and number format gain.

For each model both sides train on the same first N training images (full data for the MLPs,
20-30 batches for the conv and AAE models), alternating plain, disgen (``--precision auto``) and
disgen fp32 NCHW (what the loop alone gains) in the same process, ``--repeats`` times after one
warm-up epoch each, each repeat in a rotated order (plain, auto, fp32; auto, fp32, plain; ...;
with Keras: plain, auto, fp32, keras; auto, fp32, keras, plain; ...).
disgen is timed as a later epoch: the first epoch's per-step divergence checks (50 steps) are left
out, and only ``train_epoch`` runs (no evaluation, checkpoints or pictures).

For seed 000 (mlp-classifier) a fourth side is Keras 3 on its torch backend (keras_port.py): the
same net, init, Adam and batch in ``model.fit(x, y, epochs=1, batch_size=100)`` on float32 numpy
arrays converted once, outside the timing. Keras is optional (``pip install keras``; the script sets
``KERAS_BACKEND=torch`` itself): without it, or with ``--no-keras``, that side is skipped with a message.

    python benchmarks/bench_speed.py [--repeats 3] [--dataset fashion-mnist]
                                     [--models mlp-classifier,dcgan28] [--images N] [--threads N]
                                     [--no-keras] [--name speed] [--append]

The full default run takes about 7 minutes with --threads 1 (estimated from per-step times) and
less with two. It needs a quiet machine: with other processes on the cores, every multi-threaded op
waits for a descheduled thread and two-thread timings grow 5-20x; --threads 1 stays stable there.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, load_data, make_trainer, rotated, save, start, subset, summary, table, tutorial_loader  # noqa: E402
from keras_port import EpochTimer, import_keras, keras_mlp_classifier, keras_results  # noqa: E402

from disgen.data import load_dataset  # noqa: E402


# -- seed 000: MLP classifier 784-100-50-10 sigmoid, Adam, batch 100 -----------------------------
def uniform_init(model: nn.Module) -> None:
    """MXNet's (initializer/uniform 1): weights U(-1, 1), biases 0."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1, 1)
            nn.init.zeros_(m.bias)


def tutorial_epoch(model: nn.Module, opt, loader, loss_of) -> Callable[[], None]:
    """One network, one loss ``loss_of(output, x, y)``: the loop of every tutorial."""

    def epoch():
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = loss_of(model(x), x, y)
            loss.backward()
            opt.step()

    return epoch


def classify_loss(out, x, y):
    return F.cross_entropy(out, y)


def seed000_mlp() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 50), nn.Sigmoid(), nn.Linear(50, 10))
    uniform_init(model)
    return model


def plain_mlp_classifier(data) -> Callable[[], None]:
    model = seed000_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = tutorial_loader(data.train.images, data.train.labels, 100, flatten=True)
    return tutorial_epoch(model, opt, loader, classify_loss)


# -- seed 001: MLP autoencoder 784-100-50-50-100-784 sigmoid, MSE, Adam, batch 100 ---------------
def plain_mlp_autoencoder(data) -> Callable[[], None]:
    sizes = [784, 100, 50, 50, 100, 784]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Sigmoid()]
    model = nn.Sequential(*layers)
    uniform_init(model)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = tutorial_loader(data.train.images, data.train.labels, 100, flatten=True)
    return tutorial_epoch(model, opt, loader, lambda out, x, y: F.mse_loss(out, x))


# -- disgen's cnn-classifier (seed preset: Adam 1e-3, batch 100) ---------------------------------
def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def plain_cnn_classifier(data) -> Callable[[], None]:
    model = nn.Sequential(
        *conv_bn_relu(1, 32),
        *conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        *conv_bn_relu(32, 64),
        *conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        *conv_bn_relu(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = tutorial_loader(data.train.images, data.train.labels, 100)
    return tutorial_epoch(model, opt, loader, classify_loss)


def gan_epoch(g, d, opt_g, opt_d, criterion, loader, latent_dim: int, noise_std: float) -> Callable[[], None]:
    """The PyTorch DCGAN tutorial's loop: one z per step, G(z) reused for G's update (D's weight
    gradients are computed in G's backward too, and cleared by D's next zero_grad)."""

    def epoch():
        g.train()
        d.train()
        for x, _ in loader:
            b = x.size(0)
            real, fake_label = torch.ones(b, 1), torch.zeros(b, 1)
            fake = g(torch.randn(b, latent_dim) * noise_std)
            opt_d.zero_grad()
            d_loss = (criterion(d(x), real) + criterion(d(fake.detach()), fake_label)) / 2
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = criterion(d(fake), real)
            g_loss.backward()
            opt_g.step()

    return epoch


# -- seed 002: Keras DCGAN, sigmoid + BCELoss, SGD 0.0005 nesterov, z ~ N(0, 0.3) of 100, batch 64
def plain_dcgan28(data) -> Callable[[], None]:
    """Seed 002's networks (the Keras sigmoid output kept: BCELoss) in the tutorial's GAN loop."""
    g = nn.Sequential(
        nn.Linear(100, 1024),
        nn.Tanh(),
        nn.Linear(1024, 128 * 7 * 7),
        nn.BatchNorm1d(128 * 7 * 7, eps=1e-3, momentum=0.01),
        nn.Tanh(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(128, 64, 5, padding=2),
        nn.Tanh(),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(64, 1, 5, padding=2),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 5, padding=2),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 5),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 5 * 5, 1024),
        nn.Tanh(),
        nn.Linear(1024, 1),
        nn.Sigmoid(),
    )
    for m in [*g.modules(), *d.modules()]:  # Keras' glorot_uniform
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    opt_g = torch.optim.SGD(g.parameters(), lr=0.0005, momentum=0.9, nesterov=True)
    opt_d = torch.optim.SGD(d.parameters(), lr=0.0005, momentum=0.9, nesterov=True)
    loader = tutorial_loader(data.train.images, data.train.labels, 64, signed=True)
    return gan_epoch(g, d, opt_g, opt_d, nn.BCELoss(), loader, 100, 0.3)


# -- seed 003 (b): 2-D GAN, linear G, 2-5-3-1 tanh D, Adam 0.05 / 0.005, batch 8 ----------------
def plain_gan2d(data) -> Callable[[], None]:
    g = nn.Sequential(nn.Linear(2, 2))
    d = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
    for m in [*g.modules(), *d.modules()]:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.02)
            nn.init.zeros_(m.bias)
    opt_g = torch.optim.Adam(g.parameters(), lr=0.005)
    opt_d = torch.optim.Adam(d.parameters(), lr=0.05)
    loader = tutorial_loader(data.train.images, data.train.labels, 8)
    return gan_epoch(g, d, opt_g, opt_d, nn.BCEWithLogitsLoss(), loader, 2, 1.0)


# -- seed 004: semi-supervised AAE, 784-1000-1000-[y 10, z 10], Adam 1e-3, batch 100 ------------
def mlp(*sizes) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class PlainEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(mlp(784, 1000, 1000), nn.ReLU())
        self.y, self.z = nn.Linear(1000, 10), nn.Linear(1000, 10)

    def forward(self, x):
        h = self.body(x)
        return self.y(h), self.z(h)


def plain_aae(data, labelled: torch.Tensor) -> Callable[[], None]:
    """Three phases per batch, one Adam per phase, as seed 004; a labelled batch from the
    ``labelled`` subset (cycled) for the classification phase. As PyTorch tutorials write it:
    encoder outputs detached for the discriminators' update, and the discriminators' weight
    gradients computed in the encoder's adversarial backward too (disgen freezes them)."""
    enc, dec = PlainEncoder(), nn.Sequential(mlp(20, 1000, 1000, 784), nn.Sigmoid())
    d_gauss, d_cat = mlp(10, 1000, 1000, 1), mlp(10, 1000, 1000, 1)
    opt_ae = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    opt_d = torch.optim.Adam([*d_gauss.parameters(), *d_cat.parameters()], lr=1e-3)
    opt_g = torch.optim.Adam(enc.parameters(), lr=1e-3)
    opt_c = torch.optim.Adam(enc.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    loader = tutorial_loader(data.train.images, data.train.labels, 100, flatten=True)
    lab_loader = tutorial_loader(data.train.images[labelled], data.train.labels[labelled], 100, flatten=True)

    def epoch():
        for m in (enc, dec, d_gauss, d_cat):
            m.train()
        lab_iter = iter(lab_loader)
        for x, _ in loader:
            try:
                x_lab, y_lab = next(lab_iter)
            except StopIteration:
                lab_iter = iter(lab_loader)
                x_lab, y_lab = next(lab_iter)
            b = x.size(0)
            ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
            # reconstruction
            y, z = enc(x)
            recon_loss = F.mse_loss(dec(torch.cat([y.softmax(1), z], 1)), x)
            opt_ae.zero_grad()
            recon_loss.backward()
            opt_ae.step()
            # regularisation: the discriminators
            y, z = enc(x)
            z_real = torch.randn(b, 10) * 5.0
            y_real = torch.eye(10)[torch.randint(0, 10, (b,))]
            d_loss = (bce(d_gauss(z_real), ones) + bce(d_gauss(z.detach()), zeros)) / 2 + (
                bce(d_cat(y_real), ones) + bce(d_cat(y.softmax(1).detach()), zeros)
            ) / 2
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            # regularisation: the encoder as generator
            y, z = enc(x)
            g_loss = bce(d_gauss(z), ones) + bce(d_cat(y.softmax(1)), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            # semi-supervised classification
            y, _ = enc(x_lab)
            ce_loss = F.cross_entropy(y, y_lab)
            opt_c.zero_grad()
            ce_loss.backward()
            opt_c.step()

    return epoch


# -- the benchmark -------------------------------------------------------------------------------
@dataclass
class Case:
    model: str
    seed: str  # which document the plain port follows
    images: int | None  # training images timed per epoch (None: all)
    batch: int
    target: float | None  # the ratio disgen / plain the speed issue asks for (None: none set)
    options: dict  # TrainConfig overrides of the disgen side
    dataset: str | None = None  # a dataset of its own (gan2d's points), else --dataset


CASES = {
    "mlp-classifier": Case("mlp-classifier", "seed 000", None, 100, 2.5, {}),
    "mlp-autoencoder": Case("mlp-autoencoder", "seed 001", None, 100, None, {}),
    "cnn-classifier": Case("cnn-classifier", "disgen's", 5000, 100, 2.0, {}),
    "dcgan28": Case("dcgan28", "seed 002", 1920, 64, 2.5, {}),
    "aae": Case("aae", "seed 004", 5000, 100, 2.0, {"labels": 1000}),
    "gan2d": Case("gan2d", "seed 003b", None, 8, None, {}, dataset="gaussian2d"),
}


def labels_for(data, wanted: int) -> int:
    """``wanted`` labelled images, or fewer where the subset is too small (a multiple of the classes)."""
    k = len(data.classes)
    per_class = min(int((data.train.labels == c).sum()) for c in range(k))
    return min(wanted, per_class * k)


def run_case(case: Case, data, repeats: int, run_dir: Path, keras=None) -> dict:
    options = {"preset": "seed", **case.options}
    if "labels" in options:
        options["labels"] = labels_for(data, options["labels"])
    torch.manual_seed(0)
    sides = {
        "auto": make_trainer(case.model, data, options, run_dir / "auto"),
        "fp32": make_trainer(
            case.model, data, {**options, "precision": "fp32", "channels_last": "off"}, run_dir / "fp32"
        ),
    }
    torch.manual_seed(0)
    if case.model == "aae":
        plain = plain_aae(data, sides["auto"].label_idx)
    else:
        plain = PLAIN[case.model](data)
    n, steps = len(data.train), len(sides["auto"].loader)
    epochs = {"plain": plain, "auto": sides["auto"].train_epoch, "fp32": sides["fp32"].train_epoch}
    timer = EpochTimer()
    if keras is not None and case.model in KERAS:
        epochs["keras"] = KERAS[case.model](keras, data, timer)
    seconds: dict[str, list[float]] = {k: [] for k in epochs}
    for fn in epochs.values():  # warm-up: allocator, oneDNN kernels, autocast caches, Keras' train function
        fn()
    timer.seconds.clear()
    for r in range(repeats):  # alternate so that drift hits every side alike
        for k in rotated(list(epochs), r):
            start = time.perf_counter()
            epochs[k]()
            seconds[k].append(time.perf_counter() - start)
    out = {
        "images": n,
        "batch": case.batch,
        "steps": steps,
        "target": case.target,
        "precision": sides["auto"].speed.precision,
        "channels_last": sides["auto"].speed.channels_last,
        "samples_per_s": {k: summary([n / s for s in v]) for k, v in seconds.items()},
        "ms_per_batch": {k: summary([1000 * s / steps for s in v]) for k, v in seconds.items()},
        "ratio": summary([p / a for p, a in zip(seconds["plain"], seconds["auto"])]),
        "ratio_fp32": summary([p / a for p, a in zip(seconds["plain"], seconds["fp32"])]),
        # Robust to other load on the machine, which only ever slows an epoch down: the median of the
        # paired ratios, and the ratio of each side's fastest epoch (timeit's rule).
        "ratio_median": statistics.median(p / a for p, a in zip(seconds["plain"], seconds["auto"])),
        "ratio_fastest": min(seconds["plain"]) / min(seconds["auto"]),
        "seconds": seconds,
    }
    if "keras" in seconds:
        out["keras"] = keras_results(keras, seconds, timer.seconds)
    return out


PLAIN = {
    "mlp-classifier": plain_mlp_classifier,
    "mlp-autoencoder": plain_mlp_autoencoder,
    "cnn-classifier": plain_cnn_classifier,
    "dcgan28": plain_dcgan28,
    "gan2d": plain_gan2d,
}
KERAS = {"mlp-classifier": keras_mlp_classifier}  # the Keras baselines (keras_port.py): seed 000 only
HEADER = [
    "model (plain port of)",
    "data",
    "images",
    "batch",
    "plain/s",
    "disgen/s",
    "disgen precision",
    "fp32/s",
    "disgen/plain",
    "median, fastest",
    "fp32/plain",
    "target",
    "ms/batch plain/disgen/fp32",
]


def row(name: str, case: Case, data_name: str, r: dict) -> list:
    sps, ms = r["samples_per_s"], r["ms_per_batch"]
    ratio = lambda key: f"{r[key][0]:.2f}x ± {r[key][1]:.2f}"
    precision = r["precision"] + (" NHWC" if r["channels_last"] else "")
    return [
        f"{name} ({case.seed})",
        data_name,
        f"{r['images']:,}",
        case.batch,
        f"{sps['plain'][0]:,.0f}",
        f"{sps['auto'][0]:,.0f}",
        precision,
        f"{sps['fp32'][0]:,.0f}",
        ratio("ratio"),
        f"{r['ratio_median']:.2f}x, {r['ratio_fastest']:.2f}x",
        ratio("ratio_fp32"),
        f"{case.target:.1f}x" if case.target else "-",
        " / ".join(f"{ms[k][0]:.1f}" for k in ("plain", "auto", "fp32")),
    ]


def main() -> None:
    ap = bench_parser(__doc__, CASES, "speed")
    ap.add_argument("--images", type=int, help="training images per epoch for every model (default: per model)")
    ap.add_argument("--no-keras", action="store_true", help="skip the Keras side of mlp-classifier")
    args = ap.parse_args()
    models = start(ap, args, CASES)
    keras = None if args.no_keras or not set(models) & set(KERAS) else import_keras()
    images = load_data(args.dataset)
    results, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="disgen-bench-speed-") as tmp:
        for name in models:
            case = CASES[name]
            data = load_dataset(case.dataset) if case.dataset else images
            data = subset(data, args.images or case.images)
            print(f"{name}: {len(data.train):,} images, batch {case.batch} ...", file=sys.stderr, flush=True)
            results[name] = {"dataset": data.name, **run_case(case, data, args.repeats, Path(tmp) / name, keras)}
            rows.append(row(name, case, data.name, results[name]))
    print(
        f"\ntraining samples/s, disgen Trainer (seed preset) vs a plain tutorial loop in the same process, "
        f"CPU {torch.get_num_threads()} threads, n={args.repeats} (mean ± std over repeats)"
    )
    print(table(rows, HEADER))
    print("fp32: disgen with --precision fp32 --channels-last off (the loop and data path alone)")
    for name, r in results.items():
        if "keras" in r:
            k = r["keras"]
            print(
                f"{name} against Keras {k['version']} ({k['backend']} backend), {r['samples_per_s']['keras'][0]:,.0f} "
                f"samples/s: disgen/keras {k['ratio'][0]:.2f}x ± {k['ratio'][1]:.2f} (median {k['ratio_median']:.2f}x, "
                f"fastest {k['ratio_fastest']:.2f}x; epoch inside fit {k['ratio_inside_fit'][0]:.2f}x)"
            )
    path = save(args.name, {"dataset": images.name, "repeats": args.repeats, "models": results}, append=args.append)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
