"""``disgen serve``: the JSON API through Starlette's TestClient, the real uvicorn server over
sockets (body limits, concurrency, the CLI's bind address), and the page in headless Chromium
driven by Playwright: a drawn "1" reads back 1, sample changes the image, bad uploads show errors.
Real runs trained here on the bundled digits; nothing is mocked."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("starlette", reason="disgen serve needs the serve extra: pip install 'disgen[serve]'")
from conftest import SUBPROCESS_ENV, subset  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import disgen  # noqa: E402
from disgen import serve  # noqa: E402
from disgen.api import Run  # noqa: E402
from disgen.cli import build_parser, main  # noqa: E402
from disgen.data import load_dataset  # noqa: E402
from disgen.models import get_model, list_models, resolve  # noqa: E402
from disgen.objectives import get_objective  # noqa: E402
from disgen.serve import explorer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


# -- runs and servers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator_run(tmp_path_factory, mnist_mini) -> Run:
    """A small supervised aae (digit + style), one epoch on 1000 digits: a generator in seconds."""
    return disgen.train(
        "aae",
        dataset_obj=subset(mnist_mini, 1000, 200),
        epochs=1,
        progress=False,
        model_args={"mode": "supervised", "hidden": (256,), "d_hidden": (64,)},
        run_dir=str(tmp_path_factory.mktemp("runs") / "aae"),
    )


@pytest.fixture(scope="module")
def points_run(tmp_path_factory) -> Run:
    """gan2d, one epoch on 200 points: a generator of 2-D points."""
    return disgen.train(
        "gan2d",
        dataset_obj=subset(load_dataset("gaussian2d"), 200, 200),
        epochs=1,
        progress=False,
        run_dir=str(tmp_path_factory.mktemp("runs") / "gan2d"),
    )


def client_of(run: Run, **options) -> TestClient:
    return TestClient(serve.make_app(run.dir, **options), base_url="http://localhost")


@pytest.fixture(scope="module")
def clf(classifier_run):
    with client_of(classifier_run) as c:
        yield c


@pytest.fixture(scope="module")
def gen(generator_run):
    with client_of(generator_run) as c:
        yield c


@pytest.fixture(scope="module")
def clf_url(classifier_run):
    with serve.serving(serve.make_app(classifier_run.dir)) as url:
        yield url


# -- pictures ------------------------------------------------------------------------------------
def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def drawn(shape: str, ink: int = 255, paper: int = 0) -> bytes:
    """A 280x280 drawing like the page's canvas: a "1" (a vertical stroke) or a "0" (an oval)."""
    im = Image.new("L", (280, 280), paper)
    d = ImageDraw.Draw(im)
    if shape == "1":
        d.line([(140, 50), (140, 230)], fill=ink, width=22)
    else:
        d.ellipse([80, 50, 200, 230], outline=ink, width=22)
    return png(im)


def pixels(url: str) -> np.ndarray:
    """The pixels of a PNG data URL."""
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def post_image(client, data: bytes, path: str = "/api/predict", ctype: str = "image/png"):
    return client.post(path, content=data, headers={"content-type": ctype})


# -- what the page offers, over the whole registry -----------------------------------------------
CASES = [(m, None) for m in list_models() if m != "aae"] + [
    ("aae", mode) for mode in ("unsupervised", "supervised", "semi-supervised")
]
SMALL = {"resnet-transfer": {"arch": "resnet18", "image_size": 32}}  # the same code, faster


@pytest.mark.parametrize("model,mode", CASES)
def test_features_follow_the_objective(model, mode):
    """Every registered model (and aae mode) gets the panels its objective supports, built from
    its real networks (untrained: only the offer is checked here)."""
    spec = get_model(model)
    cfg = resolve(model, {"model_args": {"mode": mode} if mode else SMALL.get(model, {})})
    model_cfg = spec.model_config(cfg.model_args)
    shape = spec.data_shape(model_cfg) or (1, 28, 28)
    nets = spec.build(model_cfg, shape, 10)
    run = Run(Path("run"), cfg, spec, get_objective(spec.objective), nets, shape, [str(i) for i in range(10)])
    f = explorer.features_of(run)
    objective = run.objective  # what it declares (the hooks it has, and what it offers for this config)
    offers = objective.offers(model_cfg) if objective.offers else {}
    assert f["predict"] == offers.get("predict", objective.predict is not None)
    assert f["reconstruct"] == offers.get("reconstruct", objective.reconstruct is not None)
    assert f["sample"] == (None if objective.sample is None else "points" if len(shape) == 1 else "images")
    assert f["labels"] == offers.get("labels", False)
    if spec.objective == "aae":  # the aae's modes, spelled out
        assert (f["predict"], f["reconstruct"], f["labels"]) == {
            "unsupervised": (False, True, False),
            "supervised": (False, False, True),
            "semi-supervised": (True, True, True),
        }[mode]
    assert f["draw"] == (shape == (1, 28, 28) and (f["predict"] or f["reconstruct"]))
    # ...and the offered endpoints answer with pictures of the model's shape
    page = explorer.Explorer(run, f)
    if f["sample"] == "images":
        assert f["latent_dim"] >= 1 and f["sliders"] == min(explorer.SLIDERS, f["latent_dim"])
        image = pixels(page.sample({"seed": 1, "label": 0 if f["labels"] else None})["image"])
        assert image.shape == (shape[1:] if shape[0] == 1 else (*shape[1:], shape[0]))
    upload = drawn("1")
    if f["predict"]:
        assert len(page.predict(upload)["probabilities"]) == 10
    if f["reconstruct"]:
        assert pixels(page.reconstruct(upload)["reconstruction"]).shape == shape[1:]


# -- the API through TestClient ------------------------------------------------------------------
def test_info_and_page(clf, classifier_run):
    info = clf.get("/api/info").json()
    assert info["model"] == "mlp-classifier" and info["objective"] == "classify"
    assert info["classes"] == [str(i) for i in range(10)] and info["image_shape"] == [1, 28, 28]
    assert info["features"]["predict"] and info["features"]["draw"] and info["features"]["sample"] is None
    assert info["epochs"] == len(classifier_run.history)
    assert info["max_upload_bytes"] == serve.MAX_UPLOAD_BYTES
    assert info["metrics"]["test_accuracy"] == pytest.approx(classifier_run.final["test_accuracy"])
    chosen = classifier_run.history[classifier_run.epoch - 1]  # the checkpoint's epoch, not the last
    assert info["metrics"]["val_accuracy"] == pytest.approx(chosen["val_accuracy"])
    # The page labelled validation figures as test ("test val_accuracy 0.9775 ... accuracy 0.9810").
    assert info["scores"] == (
        f"validation accuracy {chosen['val_accuracy']:.4f}, loss {chosen['val_loss']:.4f} (epoch {chosen['epoch']}); "
        f"test accuracy {classifier_run.final['test_accuracy']:.4f}, loss {classifier_run.final['test_loss']:.4f}"
    )
    page = clf.get("/")
    assert page.status_code == 200 and 'id="canvas"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]  # nothing from a CDN
    for name in ("explorer.js", "explorer.css"):
        r = clf.get(f"/static/{name}")
        assert r.status_code == 200 and "://" not in r.text and "://" not in page.text
    assert "/api/predict" in clf.get("/static/explorer.js").text


def test_drawn_digits_are_recognised(clf):
    for digit in ("1", "0"):
        r = post_image(clf, drawn(digit))
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["label"] == digit and d["classes"][int(digit)] == digit
        assert sum(d["probabilities"]) == pytest.approx(1, abs=1e-4) and len(d["probabilities"]) == 10
        seen = pixels(d["input"])  # what the model saw: MNIST's 20x20 box centred in 28x28
        assert seen.shape == (28, 28) and seen[:3].max() == 0 and seen[-3:].max() == 0
    # dark ink on white paper, as a JPEG, is turned to MNIST's polarity first
    photo = Image.open(io.BytesIO(drawn("1", ink=20, paper=235))).convert("RGB")
    r = post_image(clf, png(photo, "JPEG"), ctype="image/jpeg")
    assert r.status_code == 200 and r.json()["label"] == "1"


def test_a_28x28_digit_is_classified_as_disgen_predict_does(clf, classifier_run, mnist_mini):
    for img in mnist_mini.test.images[:5, 0]:  # (28, 28) uint8 each
        d = post_image(clf, png(Image.fromarray(img.numpy()))).json()
        want = classifier_run.predict(img[None, None])[0]
        assert torch.allclose(torch.tensor(d["probabilities"]), want, atol=1e-5)
        assert np.array_equal(pixels(d["input"]), img.numpy())  # no refitting of a 28x28 image


@pytest.mark.parametrize(
    "body,ctype,status,words",
    [
        (b"these bytes are not an image", "image/png", 400, "not an image"),
        (b"", "image/png", 400, "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png", 400, "not an image"),
        (b"GIF89a", "application/octet-stream", 400, "not an image"),
        (b"{}", "application/json", 415, "image/*"),
        (b"x", "", 415, "no content type"),
    ],
)
def test_malformed_uploads_are_refused(clf, body, ctype, status, words):
    r = post_image(clf, body, ctype=ctype)
    assert r.status_code == status and words in r.json()["error"]


def test_truncated_and_huge_images_are_refused(clf):
    whole = drawn("1")
    r = post_image(clf, whole[: len(whole) // 2])
    assert r.status_code == 400 and "truncated" in r.json()["error"]
    big = png(Image.new("1", (5000, 4000)))  # 20 Mpx of zeros compress to a few KB
    assert len(big) < 100_000
    r = post_image(clf, big)
    assert r.status_code == 413 and "5000x4000" in r.json()["error"]


def test_body_limit(classifier_run):
    with client_of(classifier_run, max_upload_bytes=2000) as c:
        r = post_image(c, drawn("1") + b"\0" * 2000)
        assert r.status_code == 413 and "2,000" in r.json()["error"]
        assert c.get("/api/info").json()["max_upload_bytes"] == 2000
    r = post_image(client_of(classifier_run), b"{" * 70_000, "/api/sample", "application/json")
    assert r.status_code == 413 and f"{serve.MAX_JSON_BYTES:,}" in r.json()["error"]


def test_generator_endpoints(gen, generator_run):
    info = gen.get("/api/info").json()
    f = info["features"]
    assert (f["sample"], f["labels"], f["mode"]) == ("images", True, "supervised")
    assert f["latent_dim"] == f["sliders"] == 5  # the default preset's z
    assert not f["predict"] and not f["reconstruct"] and not f["draw"]
    a = gen.post("/api/sample", json={"seed": 3, "label": 7}).json()
    assert a["seed"] == 3 and a["label"] == 7 and len(a["z"]) == 5 and pixels(a["image"]).shape == (28, 28)
    assert gen.post("/api/sample", json={"seed": 3, "label": 7}).json() == a  # a seed is reproducible
    want = generator_run.sample(1, seed=3, label=7)[0, 0]
    assert np.abs(pixels(a["image"]) / 255 - want.numpy()).max() <= 1 / 255
    b = gen.post("/api/sample", json={"seed": 4, "label": 7}).json()
    assert not np.array_equal(pixels(a["image"]), pixels(b["image"]))
    other = gen.post("/api/sample", json={"seed": 3, "label": 1}).json()
    assert not np.array_equal(pixels(a["image"]), pixels(other["image"]))  # the digit matters
    same = gen.post("/api/sample", json={"z": a["z"], "label": 7}).json()  # the sliders' request
    assert same["seed"] is None and np.abs(pixels(same["image"]).astype(int) - pixels(a["image"])).max() <= 1
    r = gen.post("/api/interpolate", json={"seed_a": 3, "seed_b": 4, "steps": 5, "label": 7}).json()
    ends = [pixels(r["images"][0]), pixels(r["images"][-1])]
    assert len(r["images"]) == 5
    assert np.abs(ends[0].astype(int) - pixels(a["image"])).max() <= 1
    assert np.abs(ends[1].astype(int) - pixels(b["image"])).max() <= 1


def test_points_and_reconstruction(points_run, autoencoder_run, mnist_mini):
    with client_of(points_run) as c:
        assert c.get("/api/info").json()["features"]["sample"] == "points"
        d = c.post("/api/sample", json={"seed": 5}).json()
        assert len(d["points"]) == explorer.POINTS and all(len(p) == 2 for p in d["points"])
        want = points_run.sample(explorer.POINTS, seed=5)
        assert torch.allclose(torch.tensor(d["points"]), want, atol=1e-4)
        assert c.post("/api/interpolate", json={"seed_a": 1, "seed_b": 2}).status_code == 404
    with client_of(autoencoder_run) as c:
        img = mnist_mini.test.images[0, 0]
        d = post_image(c, png(Image.fromarray(img.numpy())), "/api/reconstruct").json()
        want = autoencoder_run.reconstruct(img[None, None])[0, 0].numpy()
        assert np.abs(pixels(d["reconstruction"]) / 255 - want).max() <= 1 / 255
        assert np.array_equal(pixels(d["input"]), img.numpy())
        assert post_image(c, drawn("1")).status_code == 404  # an autoencoder does not classify


def raw(body: bytes, ctype: str = "application/json") -> dict:
    return {"content": body, "headers": {"content-type": ctype}}


@pytest.mark.parametrize(
    "method,path,kwargs,status,words",
    [
        ("POST", "/api/sample", raw(b"{bad"), 400, "malformed JSON"),
        ("POST", "/api/sample", raw(b"[1, 2]"), 400, "JSON object"),
        ("POST", "/api/sample", raw(b"\xff\xfe"), 400, "malformed JSON"),
        ("POST", "/api/sample", raw(b"[" * 60_000), 400, "malformed JSON"),  # nested past the recursion limit
        ("POST", "/api/sample", raw(b'{"seed": 1%s}' % (b"0" * 5000)), 400, "malformed JSON"),  # int too long
        ("POST", "/api/sample", raw(b'{"seed": 1}', "text/plain"), 415, "application/json"),
        ("POST", "/api/sample", {"json": {"seed": -1}}, 422, "seed"),
        ("POST", "/api/sample", {"json": {"seed": "1"}}, 422, "seed"),
        ("POST", "/api/sample", {"json": {"seed": True}}, 422, "seed"),
        ("POST", "/api/sample", {"json": {"seed": 1, "label": 10}}, 422, "label"),
        ("POST", "/api/sample", {"json": {"z": [0.0] * 4}}, 422, "list of 5 numbers"),
        ("POST", "/api/sample", {"json": {"z": [0.0] * 4 + ["1"]}}, 422, "list of 5 numbers"),
        ("POST", "/api/sample", raw(b'{"z": [NaN, 0, 0, 0, 0]}'), 422, "from -1000 to 1000"),
        ("POST", "/api/sample", raw(b'{"z": [1e999, 0, 0, 0, 0]}'), 422, "from -1000 to 1000"),
        ("POST", "/api/sample", raw(b'{"z": [1%s, 0, 0, 0, 0, 0, 0, 0, 0, 0]}' % (b"0" * 400)), 422, "numbers"),
        ("POST", "/api/interpolate", {"json": {"seed_a": 1}}, 422, "seed_b"),
        ("POST", "/api/interpolate", {"json": {"seed_a": 1, "seed_b": 2, "steps": 500}}, 422, "steps"),
        ("POST", "/api/predict", raw(b"x", "image/png"), 404, "does not classify"),
        ("GET", "/api/sample", {}, 405, "Method Not Allowed"),
        ("PUT", "/api/info", {}, 405, "Method Not Allowed"),
        ("GET", "/api/nothing", {}, 404, "Not Found"),
        ("GET", "/static/../config.json", {}, 404, "Not Found"),
        ("GET", "/static/%2e%2e/config.json", {}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_json_errors(gen, method, path, kwargs, status, words):
    r = gen.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_the_run_directory_is_never_written(classifier_run, generator_run):
    def listing(root: Path) -> dict:
        return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}

    before = {r.dir: listing(r.dir) for r in (classifier_run, generator_run)}
    for run in (classifier_run, generator_run):
        with client_of(run) as c:
            c.get("/"), c.get("/api/info"), c.get("/static/explorer.css")
            post_image(c, drawn("1")), post_image(c, drawn("0"), "/api/reconstruct")
            post_image(c, b"junk"), post_image(c, b"junk", "/api/predict", "text/html")
            c.post("/api/sample", json={"seed": 1, "label": 2})
            c.post("/api/interpolate", json={"seed_a": 1, "seed_b": 2})
            c.post("/api/sample", content=b"{bad", headers={"content-type": "application/json"})
            for path in (
                "/static/../config.json",
                "/static/..%2fcheckpoints%2flast.pt",
                "/run.json",
                "/checkpoints/last.pt",
                "/api/../config.json",
            ):
                r = c.get(path)
                assert r.status_code == 404 and b'"model"' not in r.content
            for method in ("PUT", "DELETE", "PATCH"):
                assert c.request(method, "/api/predict").status_code == 405
    assert {r.dir: listing(r.dir) for r in (classifier_run, generator_run)} == before


# -- only for this server's names (DNS rebinding) ------------------------------------------------
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example:8000",
    "127.0.0.2",
    "[::2]:8000",
    "10.0.0.5",
    "localhost:http",
    "::1",
    "[::1",
    "127.0.0.1:8000@evil.example",
]
OWN_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:8000",
    "localhost",
    "localhost:8000",
    "LocalHost:1",
    "[::1]",
    "[::1]:8000",
    "[0:0::1]:8000",
]
EVERY_KIND = [
    ("GET", "/"),
    ("GET", "/static/explorer.js"),
    ("GET", "/api/info"),
    ("POST", "/api/predict"),
    ("GET", "/api/nothing"),
]  # the page, its files, the API, an unknown path


def ask_as(client, host: str, method: str, path: str):
    return client.request(
        method,
        path,
        content=drawn("1") if method == "POST" else None,
        headers={"host": host, "content-type": "image/png"},
    )


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_requests_naming_another_host_are_refused(clf, host):
    """A page of another site whose name resolves to 127.0.0.1 sends that name as Host: 421,
    whatever it asks for, with a JSON error and nothing of the run."""
    for method, path in EVERY_KIND:
        r = ask_as(clf, host, method, path)
        assert r.status_code == 421 and r.headers["content-type"] == "application/json", (method, path, r.text)
        error = r.json()["error"]
        assert set(r.json()) == {"error"} and "does not name this server" in error and "localhost" in error
        assert b"mlp-classifier" not in r.content and b"canvas" not in r.content and b"fetch" not in r.content


@pytest.mark.parametrize("host", OWN_HOSTS)
def test_requests_naming_this_server_are_answered(clf, host):
    assert ask_as(clf, host, "GET", "/api/info").json()["model"] == "mlp-classifier"
    assert 'id="canvas"' in ask_as(clf, host, "GET", "/").text
    assert ask_as(clf, host, "POST", "/api/predict").json()["label"] == "1"


@pytest.mark.parametrize(
    "listen,own,foreign",
    [
        ("192.168.1.5", ["192.168.1.5", "192.168.1.5:8000", "localhost:8000"], ["192.168.1.6:8000", "evil.example"]),
        ("MyBox.lan", ["mybox.lan:8000", "MYBOX.LAN", "127.0.0.1"], ["mybox.lan.evil.example", "evil.example"]),
        ("::1", ["[::1]:8000", "[0::1]"], ["[::2]", "evil.example"]),
        ("0.0.0.0", ["192.168.1.5:8000", "[fe80::1]:8000", "10.1.2.3", "localhost"], ["evil.example:8000", "mybox"]),
        ("::", ["192.168.1.5:8000", "[2001:db8::1]", "localhost"], ["evil.example", "[::1"]),
    ],
)
def test_the_address_listened_on_names_the_server_too(classifier_run, listen, own, foreign):
    """``--host`` adds its name; every address (0.0.0.0, ::) admits any IP address, which no other
    site can take as its own name, but still no other name."""
    with client_of(classifier_run, host=listen) as c:
        for host in own:
            assert ask_as(c, host, "GET", "/api/info").status_code == 200, host
        for host in foreign:
            assert ask_as(c, host, "GET", "/api/info").status_code == 421, host


# -- the real server -----------------------------------------------------------------------------
def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (and ``body``) on a socket; the status and JSON of the answer, read until the
    server closes the connection (it must: the request's body was not read to its end)."""
    host, port = url.split("//")[1].strip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_oversized_bodies_are_refused_before_they_are_read(clf_url):
    # A claim of a 1 GB upload is answered at once, without waiting for (or reading) the body.
    head = (
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    t = time.monotonic()
    status, body = raw_request(clf_url, head)
    assert status == 413 and "1,000,000,000" in body["error"] and time.monotonic() - t < 5
    # A chunked body without a length is cut off once it passes the limit.
    head = (
        b"POST /api/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (serve.MAX_JSON_BYTES + 10, b" " * (serve.MAX_JSON_BYTES + 10))
    status, body = raw_request(clf_url, head, chunk)  # no final chunk: the server must not wait for it
    assert status == 413 and "limit" in body["error"]


def test_a_stalled_body_times_out(classifier_run):
    head = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n"
    with serve.serving(serve.make_app(classifier_run.dir, body_seconds=0.5)) as url:
        t = time.monotonic()
        status, body = raw_request(url, head, b"\x89PNG")  # 4 of the 100 bytes, then nothing
    assert status == 408 and "did not arrive within 0.5 s" in body["error"] and 0.4 < time.monotonic() - t < 5


def test_concurrent_requests_all_get_right_answers(clf_url):
    one, zero = drawn("1"), drawn("0")

    def ask(i: int):
        data = one if i % 2 else zero
        req = urllib.request.Request(
            clf_url + "api/predict", data=data if i % 5 else b"junk", headers={"Content-Type": "image/png"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())["label"]
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())["error"]

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(ask, range(48)))
    for i, (status, answer) in enumerate(answers):
        if i % 5 == 0:
            assert status == 400 and "not an image" in answer
        else:
            assert (status, answer) == (200, "1" if i % 2 else "0")


def test_cli_binds_to_localhost_by_default(classifier_run):
    args = build_parser(["serve", "RUN"]).parse_args(["serve", "RUN"])
    assert (args.host, args.port, args.checkpoint) == ("127.0.0.1", 8000, "auto")
    proc = subprocess.Popen(
        [sys.executable, "-m", "disgen", "serve", str(classifier_run.dir), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    try:
        lines = [proc.stderr.readline() for _ in range(1)]
        while " at http" not in lines[-1] and lines[-1] and len(lines) < 20:
            lines.append(proc.stderr.readline())
        line = lines[-1]
        assert " at http://127.0.0.1:" in line, lines
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            assert json.loads(r.read())["model"] == "mlp-classifier"
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(ConnectionRefusedError):  # another loopback address: not listening there
            socket.create_connection(("127.0.0.2", port), timeout=5)
    finally:
        proc.terminate()
        proc.wait(30)


def test_cli_errors(classifier_run, tmp_path, capsys, monkeypatch):
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a disgen run directory" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", str(classifier_run.dir), "--port", str(busy.getsockname()[1])]) == 2
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    monkeypatch.setattr(serve.app, "Starlette", None)
    assert main(["serve", str(classifier_run.dir)]) == 2
    assert "pip install 'disgen[serve]'" in capsys.readouterr().err


# -- the page in Chromium ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
    )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    page.close()
    assert not errors, errors  # no script errors on the page


def open_page(page, url: str):
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def stroke(page, points) -> None:
    """Draw on the canvas with the mouse through ``points`` (canvas pixels)."""
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=2)
    page.mouse.up()


def test_page_reads_a_drawn_one_and_zero(page, clf_url):
    open_page(page, clf_url)
    summary = page.inner_text("#summary")
    assert "; validation accuracy " in summary and "; test accuracy " in summary and "test val_" not in summary
    stroke(page, [(140, 50), (140, 140), (140, 230)])
    page.wait_for_selector("#prediction:not(:empty)")
    assert page.inner_text("#prediction") == "1"
    assert page.locator("#probs .prob").count() == 10
    assert page.locator("#probs .prob.top").get_attribute("data-class") == "1"
    assert page.locator("#model-input").evaluate("el => el.naturalWidth") == 28
    page.click("#clear")
    assert page.inner_text("#prediction") == ""
    oval = [(140 + 60 * math.sin(t), 140 - 90 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 25)]
    stroke(page, oval)
    page.wait_for_selector("#prediction:not(:empty)")
    assert page.inner_text("#prediction") == "0"
    assert page.is_hidden("#sample-panel") and page.is_hidden("#reconstruct-panel")


def test_page_shows_upload_errors(page, classifier_run):
    with serve.serving(serve.make_app(classifier_run.dir, max_upload_bytes=64 * 1024)) as url:
        open_page(page, url)
        page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}])
        page.wait_for_selector("#error:not([hidden])")
        assert "not an image" in page.inner_text("#error")
        page.set_input_files("#file", files=[{"name": "scan.png", "mimeType": "image/png", "buffer": drawn("1")}])
        page.wait_for_selector("#error[hidden]", state="attached")  # a good upload clears the error
        assert page.inner_text("#prediction") == "1"
        big = png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8)))
        assert len(big) > 64 * 1024
        page.set_input_files("#file", files=[{"name": "huge.png", "mimeType": "image/png", "buffer": big}])
        page.wait_for_selector("#error:not([hidden])")
        assert f"huge.png is {math.ceil(len(big) / 1024)} KB; the limit is 64 KB" in page.inner_text("#error")


def test_page_samples_and_interpolates(page, generator_run):
    with serve.serving(serve.make_app(generator_run.dir)) as url:
        open_page(page, url)
        img = page.locator("#sample-image")
        page.wait_for_selector("#sample-image[src^='data:image/png']")
        first = img.get_attribute("src")
        page.click("#sample")
        page.wait_for_selector(f"#sample-image:not([src='{first}'])")
        assert img.evaluate("el => el.naturalWidth") == 28
        assert page.input_value("#seed") != "0"
        second = img.get_attribute("src")
        page.select_option("#label", "7")  # same style, another digit
        page.wait_for_selector(f"#sample-image:not([src='{second}'])")
        third = img.get_attribute("src")
        assert page.locator("#sliders input").count() == 5  # the default preset's z
        page.locator("#sliders input").first.focus()
        for _ in range(20):
            page.keyboard.press("ArrowRight")
        page.wait_for_selector(f"#sample-image:not([src='{third}'])")
        page.click("#interpolate")
        page.wait_for_selector("#interpolation img >> nth=7")
        assert page.locator("#interpolation img").count() == 8
        assert page.is_hidden("#input-panel") and page.is_hidden("#error")


def test_page_reconstructs_a_drawing(page, autoencoder_run):
    with serve.serving(serve.make_app(autoencoder_run.dir)) as url:
        open_page(page, url)
        assert page.is_hidden("#predict-panel") and page.is_visible("#reconstruct-panel")
        stroke(page, [(140, 50), (140, 230)])
        page.wait_for_selector("#reconstruction[src^='data:image/png']")
        assert page.locator("#reconstruction").evaluate("el => el.naturalWidth") == 28


def test_page_scatters_points(page, points_run):
    with serve.serving(serve.make_app(points_run.dir)) as url:
        open_page(page, url)
        page.wait_for_selector(f"#scatter[data-points='{explorer.POINTS}']")
        assert page.is_visible("#scatter") and page.is_hidden("#sample-image")
        assert page.is_hidden("#interpolate-panel") and page.is_hidden("#input-panel")
