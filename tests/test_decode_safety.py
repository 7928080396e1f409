"""Decoding image folders into the cache, attacked: two decodes into a nearly full disk, a cache file
truncated under a streaming run, damaged and edited entries, SIGKILL and SIGTERM while the worker
processes decode (and a worker killed alone), and FIFOs or devices given to predict. Each ends in
one ``disgen: error:`` line or keeps working: never a native crash (SIGBUS), a hang, a process left
behind, or a lock held by the dead. Faults are counted as in test_hardening.py."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SUBPROCESS_ENV, cli_error, last_line, run_disgen
from PIL import Image
from test_hardening import can_mount_tmpfs, wait_for

from disgen.data import cache
from disgen.data.image_folder import load_image_folder

needs_tmpfs = pytest.mark.skipif(not can_mount_tmpfs(), reason="cannot mount a private tmpfs here")


def env_with(home: Path) -> dict:
    return {**SUBPROCESS_ENV, "DISGEN_HOME": str(home)}


def noise_folder(root: Path, n: int, classes: int = 2, side: int = 64, seed: int = 0) -> Path:
    """``n`` PNGs of random pixels (``side`` pixels a side) in ``classes`` class folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


def slow_folder(root: Path, n: int = 250) -> Path:
    """``n`` copies of one 1500x1500 PNG (28 KB, a few hundredths of a second each to decode):
    enough to decode in worker processes for a few seconds."""
    a = np.zeros((1500, 1500, 3), np.uint8)
    a[::7] = 200
    (root / "x").mkdir(parents=True)
    Image.fromarray(a).save(root / "x" / "0000.png")
    data = (root / "x" / "0000.png").read_bytes()
    for i in range(1, n):
        (root / "x" / f"{i:04d}.png").write_bytes(data)
    return root


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def start_train(folder: Path, run_dir: Path, home: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "disgen", "train", "mlp-classifier", "--dataset", str(folder), "--hidden", "4"]
        + ["--no-progress", "--run-dir", str(run_dir), *extra],
        env=env_with(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---- a disk that fills up: reserve before writing, one error, leftovers removed -------------------


def test_the_whole_entry_is_reserved_before_the_first_row_is_written(home):
    """The decoded cache takes its file's whole size from the disk (posix_fallocate) before fill
    writes a row: a disk that fills up during a decode then fails at the reservation, in one clear
    error, never half-way through writing rows (the two-decodes test below shows it end to end,
    but which of two racing decodes checks first depends on timing)."""
    seen = []

    def fill(out):
        st = os.fstat(out.fd)
        seen.append((st.st_size, st.st_blocks * 512))  # before any row is written
        out[0:4] = np.full((4, 1, 8, 8), 7, dtype=np.uint8)
        return list(range(4)), {}

    entry = cache.build("test-reserved", 4, (1, 8, 8), fill, "a test folder")
    assert seen == [(4 * 64, seen[0][1])] and seen[0][1] >= 4 * 64, seen
    assert torch.equal(entry.images[0:4], torch.full((4, 1, 8, 8), 7, dtype=torch.uint8))


@pytest.mark.slow
@needs_tmpfs
def test_two_decodes_into_a_nearly_full_disk_each_end_in_one_line(tmp_path, reliability):
    """Two ``disgen train`` runs decode different folders (7.4 MB each, in worker processes) into
    one 10 MB tmpfs as DISGEN_HOME, at the same time. Each passes the free-space check alone;
    before, both then wrote into space that was not there and died of SIGBUS (exit 135, silent).
    Now the space is reserved first: one trains, the other stops with one error naming the
    cache's disk, and no temporary folder is left."""
    a, b = noise_folder(tmp_path / "a", 600, seed=1), noise_folder(tmp_path / "b", 600, seed=2)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    q = shlex.quote
    train = [sys.executable, "-m", "disgen", "train", "mlp-classifier", "--hidden", "4", "--epochs", "1"]
    one = " ".join(map(q, train + ["--no-progress", "--dataset"]))
    runs = [
        f"({one} {q(str(src))} --run-dir {q(str(tmp_path / ('r' + k)))} 2>{q(str(tmp_path / ('e' + k)))}; "
        f"echo $? > {q(str(tmp_path / ('c' + k)))}) & "
        for k, src in (("a", a), ("b", b))
    ]
    script = (
        f"mount -t tmpfs -o size=10m disgen-test {q(str(mnt))} || exit 1; export DISGEN_HOME={q(str(mnt))}; "
        + "".join(runs)
        + f"wait; ls -a {q(str(mnt / 'decoded'))} > {q(str(tmp_path / 'left'))}"
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=SUBPROCESS_ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    codes = sorted(int((tmp_path / c).read_text()) for c in ("ca", "cb"))
    errs = [(tmp_path / e).read_text() for e in ("ea", "eb")]
    assert 135 not in codes and codes == [0, 2], (codes, errs)
    failed = next(e for e in errs if "disgen: error:" in e)
    line = last_line(failed)
    assert line.startswith("disgen: error: image folder ") and "the cache's disk" in line, failed
    assert "free some space, point DISGEN_HOME at a larger disk" in line  # reserved, or refused before
    left = (tmp_path / "left").read_text().split()
    assert not [n for n in left if ".tmp-" in n], left  # the failed decode's folder removed
    reliability.record(
        "disk",
        "two decodes into one nearly full disk at once (10 MB tmpfs as DISGEN_HOME, 7.4 MB each)",
        "space reserved first: one trained, the other one clear error naming the disk; no temporary folder left",
    )


def test_folders_of_decodes_that_died_are_removed_before_the_next(home, tmp_path, reliability):
    """A decode killed (SIGKILL, a crash) leaves ``.KEY.tmp-PID``; the next decode removes those
    of dead processes (their lock free, or no lock and no such process), and leaves alone one
    whose process still decodes."""
    decoded = home / "decoded"
    dead = decoded / ".folder-0123456789abcdef.tmp-999999999"  # no such pid, no lock taken
    locked_free = decoded / ".folder-fedcba9876543210.tmp-1"  # a lock nobody holds
    busy = decoded / ".folder-00000000aaaaaaaa.tmp-2"
    for d in (dead, locked_free, busy):
        d.mkdir(parents=True)
        (d / cache.IMAGES).write_bytes(b"\0" * 4096)
    (locked_free / cache.LOCK).touch()
    (busy / cache.LOCK).touch()
    holder = os.open(busy / cache.LOCK, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        load_image_folder(noise_folder(tmp_path / "f", 12), (3, 8, 8))
    finally:
        os.close(holder)
    assert not dead.exists() and not locked_free.exists() and busy.exists()
    reliability.record(
        "disk",
        "temporary folders of decodes that died, in the cache",
        "removed by the next decode; one whose process still decodes kept",
    )


# ---- a cache file that shrinks under a reader: a short read, one error --------------------------


@pytest.mark.slow
def test_a_cache_truncated_while_a_streamed_run_reads_it_is_one_error(tmp_path, reliability):
    """``--data-on-device no`` reads its batches from the cache file. Truncating that file while the
    run reads it killed the process with SIGBUS (a mapped page past the file's end); now the rows
    are read with pread, the short read is one error naming the file, and the next run decodes
    the folder again and trains."""
    home, folder = tmp_path / "home", noise_folder(tmp_path / "f", 60, side=16)
    proc = start_train(folder, tmp_path / "run", home, "--epochs", "100000", "--data-on-device", "no")
    try:
        images = lambda: [p / cache.IMAGES for p in (home / "decoded").glob("folder-*") if (p / cache.META).exists()]
        wait_for(lambda: (tmp_path / "run" / "checkpoints" / "last.pt").exists(), proc, "epoch 1")
        os.truncate(images()[0], 0)
        code, err = proc.wait(60), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert code == 2, err
    line = last_line(err)
    assert line.startswith(f"disgen: error: the image cache {images()[0]} shrank while it was read"), err
    again = run_disgen(
        "train", "mlp-classifier", "--dataset", str(folder), "--hidden", "4", "--epochs", "1", "--no-progress",
        "--data-on-device", "no", "--run-dir", str(tmp_path / "again"), env=env_with(home),
    )  # fmt: skip
    assert again.returncode == 0 and "ignoring the damaged image cache" in again.stderr, again.stderr
    reliability.record(
        "inputs",
        "decoded-image cache truncated while a --data-on-device no run reads it",
        "one clear error naming the file (no SIGBUS); the next run decoded again and trained",
    )


def rewrite_meta(entry: Path, change) -> None:
    """Edit an entry's meta.json and recompute its digest, as someone who read the code could."""
    meta = json.loads((entry / cache.META).read_text())
    change(meta)
    meta["sha256"] = cache.meta_digest(meta)
    (entry / cache.META).write_text(json.dumps(meta))


DAMAGE = {
    "images.u8 zeroed (same size)": lambda e: (e / cache.IMAGES).write_bytes(bytes((e / cache.IMAGES).stat().st_size)),
    "meta.json shape edited (same size)": lambda e: (e / cache.META).write_text(
        (e / cache.META).read_text().replace('"shape": [40, 3, 8, 8]', '"shape": [40, 1, 24, 8]')
    ),
    "meta.json ok list of 5 million rows": lambda e: (e / cache.META).write_text(
        json.dumps({**json.loads((e / cache.META).read_text()), "ok": list(range(5_000_000))})
    ),
    "meta.json shape edited, digest recomputed": lambda e: rewrite_meta(e, lambda m: m.update(shape=[40, 1, 24, 8])),
    "meta.json ok out of range, digest recomputed": lambda e: rewrite_meta(e, lambda m: m.update(ok=[0, 5, 99])),
    "meta.json ok repeated, digest recomputed": lambda e: rewrite_meta(e, lambda m: m.update(ok=[0] * 40)),
    "images.u8 rewritten, digest recomputed": lambda e: (
        (e / cache.IMAGES).write_bytes(bytes(reversed((e / cache.IMAGES).read_bytes()))),
        rewrite_meta(e, lambda m: None),
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_edited_cache_entry_is_decoded_again(home, tmp_path, capsys, reliability, damage):
    """The entry is checked on open (its meta's digest, its shape against the source folder and
    the size asked for, its decoded rows, a digest of sampled rows): each damage is named in a
    warning and the folder decoded again, to the same pixels."""
    folder = noise_folder(tmp_path / "f", 40)
    want = load_image_folder(folder, (3, 8, 8))
    pixels = want.train.images.contiguous(), want.test.images.contiguous()
    (entry,) = (home / "decoded").glob("folder-*")
    DAMAGE[damage](entry)
    capsys.readouterr()
    got = load_image_folder(folder, (3, 8, 8))
    err = capsys.readouterr().err
    assert f"ignoring the damaged image cache {entry}" in err and "decoding again" in err, err
    assert torch.equal(got.train.images.contiguous(), pixels[0]) and torch.equal(
        got.test.images.contiguous(), pixels[1]
    )
    assert len(got.train) == len(want.train) == 36
    reliability.record(
        "inputs",
        "decoded-image cache damaged or edited: zeroed, shape, 5 M rows, out-of-range rows, digests recomputed",
        "named in a warning, decoded again to the same pixels",
    )


# ---- worker processes: none outlives its run, a signal is never lost ----------------------------


def test_sigkill_during_a_parallel_decode_leaves_no_worker_and_frees_the_lock(tmp_path, reliability):
    """SIGKILL of ``disgen train`` while its workers decode 250 images: before, the workers were
    left parented to init, blocked on their pipe for ever, holding the inherited train.lock (so
    --resume auto said the dead process was training). Now the kernel kills them with it: within a
    second every worker is gone and the lock free (a worker merely orphaned would first finish its
    chunk of 64 images, seconds here and minutes for large photos)."""
    home, folder, run = tmp_path / "home", slow_folder(tmp_path / "slow"), tmp_path / "run"
    proc = start_train(folder, run, home, "--epochs", "1")
    try:
        wait_for(lambda: len(children(proc.pid)) >= 2, proc, "decode workers")
        workers = children(proc.pid)
        time.sleep(0.7)  # each of them busy with its first chunk of 64 images (2.5 s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    deadline = time.monotonic() + 1  # at once: a worker left alone finishes its chunk of 64 images first
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    free = lock_is_free(run / "train.lock")
    left = [w for w in workers if alive(w)]
    for pid in left:  # orphans of a broken build: not left behind by the test either
        os.kill(pid, signal.SIGKILL)
    assert not left and free, left
    reliability.record(
        "crash",
        "SIGKILL while worker processes decode an image folder (250 images)",
        "every worker gone within 1 s; the run directory's lock free",
    )


def sigterm_as_the_pool_starts(tmp_path: Path, home: Path, folder: Path, delay: float) -> tuple[int, str, list]:
    run = tmp_path / f"run-{delay}"
    proc = start_train(folder, run, home, "--epochs", "1")
    try:
        wait_for(lambda: children(proc.pid), proc, "decode workers")
        workers = children(proc.pid)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        code, err = proc.wait(30), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    time.sleep(0.5)
    return code, err, [w for w in workers if alive(w)]


@pytest.mark.parametrize(
    "delays", [(0.0, 0.05), pytest.param((0.0, 0.01, 0.02, 0.1, 0.3, 1.0), marks=pytest.mark.slow)]
)
def test_sigterm_as_the_decode_pool_starts_always_stops_the_run(tmp_path, reliability, delays):
    """SIGTERM just as the workers start, or a little later: before, three outcomes (exit 143; a
    hang on a child after "interrupted"; the signal lost in a fork handler and training on to
    exit 0). Now always exit 143 with the one line, no worker left, and no temporary folder."""
    home, folder = tmp_path / "home", slow_folder(tmp_path / "slow")
    for delay in delays:
        code, err, left = sigterm_as_the_pool_starts(tmp_path, home, folder, delay)
        assert code == 128 + signal.SIGTERM, err
        assert last_line(err).startswith("disgen: interrupted by SIGTERM; no checkpoint was written yet"), err
        assert not left and not list((home / "decoded").glob(".*.tmp-*"))
        reliability.record(
            "crash",
            "SIGTERM as the decode workers start (0 to 1 s after)",
            "exit 143 with the one line; no worker left, no temporary folder",
        )


def test_a_decode_worker_killed_alone_is_one_error_not_a_hang(tmp_path, reliability):
    """A worker killed on its own (the out-of-memory killer picks the biggest) would leave its
    images unanswered, and the run waiting for ever: it is one error, and nothing is cached."""
    home, folder = tmp_path / "home", slow_folder(tmp_path / "slow")
    proc = start_train(folder, tmp_path / "run", home, "--epochs", "1")
    try:
        wait_for(lambda: children(proc.pid), proc, "decode workers")
        time.sleep(0.3)
        os.kill(random.Random(0).choice(children(proc.pid)), signal.SIGKILL)
        code, err = proc.wait(30), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert code == 2, err
    assert last_line(err).startswith("disgen: error: a worker process decoding images died (killed by signal 9"), err
    assert not list((home / "decoded").iterdir())
    reliability.record(
        "crash",
        "one decode worker killed with SIGKILL mid-decode",
        "one clear error (no hang); nothing cached, no worker left",
    )


# ---- FIFOs and devices given to predict and reconstruct -----------------------------------------


@pytest.mark.parametrize("command", ["predict", "reconstruct"])
def test_predict_never_opens_a_fifo_or_a_device(
    tmp_path, classifier_run, autoencoder_run, capsys, reliability, command
):
    """A FIFO in a folder hung ``predict`` (open waits for a writer); a FIFO or /dev/zero given by
    name was said not to exist. Now a folder's FIFO is skipped and named, and one given by name is
    one error saying what it is."""
    run = classifier_run if command == "predict" else autoencoder_run
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    out = ["--out", str(tmp_path / ("out.csv" if command == "predict" else "out.png"))]
    done = run_disgen(command, str(run.dir), str(folder), *out, timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"skipped 1 input(s) that could not be read: {folder / 'pipe.png'} (not a regular file)" in done.stderr
    for path, what in ((folder / "pipe.png", "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        code, err = cli_error(capsys, command, run.dir, path, *out)
        assert code == 2 and err == (
            f"disgen: error: input {path} is not a file but {what}: pass image files, folders of images or IDX files"
        )
    reliability.record(
        "inputs",
        "predict and reconstruct given a FIFO in a folder, a FIFO and /dev/zero by name",
        "the folder's FIFO skipped and named; one clear error for the others (no hang)",
        3,
    )


def test_a_fifo_where_a_json_file_is_read_is_one_error(tmp_path, classifier_run, reliability):
    """``--config FIFO``, and a run whose run.json is a FIFO given to ``report``, waited for a
    writer for ever."""
    fifo = tmp_path / "options.json"
    os.mkfifo(fifo)
    run = tmp_path / "run"
    shutil.copytree(classifier_run.dir, run)
    (run / "run.json").unlink()
    os.mkfifo(run / "run.json")
    cases = (["train", "mlp-classifier", "--config", str(fifo)], fifo), (["report", str(run)], run / "run.json")
    for args, path in cases:
        done = run_disgen(*args, timeout=30)
        assert done.returncode == 2 and last_line(done.stderr).endswith(
            f"{path} is not a file but a named pipe (FIFO): pass the right file"
        ), done.stderr
    reliability.record(
        "inputs", "a FIFO as --config and as a run's run.json", "one clear error saying what it is (no hang)", 2
    )


def busy_job(i: int) -> bytes:
    """A job of a couple of milliseconds, and a result the size of a small image."""
    deadline = time.monotonic() + 0.002
    while time.monotonic() < deadline:
        pass
    return bytes(2000)


@pytest.mark.parametrize("tries", [5, pytest.param(30, marks=pytest.mark.slow)])
def test_stopping_a_decode_at_any_point_ends_at_once(reliability, tries):
    """The run stops consuming the workers' results (an error, Ctrl-C) at a random point of 3,000
    jobs (5 times; 30 with -m slow): each time every worker is killed and reaped within seconds. With
    multiprocessing.Pool, terminate() could deadlock on a queue lock held by a worker it killed
    half-way through putting its result: a run stopped mid-decode hung for an hour."""
    import multiprocessing

    from disgen.data import workers

    rng = random.Random(tries)
    for _ in range(tries):
        stop, start = rng.randint(0, 400), time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            for i, _ in enumerate(workers.imap(busy_job, range(3000), 2, 64)):
                if i == stop:
                    raise KeyboardInterrupt
        assert not multiprocessing.active_children() and time.monotonic() - start < 20
    assert len(list(workers.imap(busy_job, range(300), 2, 64))) == 300
    reliability.record(
        "crash",
        "a decode stopped at a random point of 3,000 jobs (an error, Ctrl-C)",
        "every worker killed and reaped at once",
        tries,
    )
