"""Every results table in README.md and docs/*.md is what benchmarks/results/*.json give
(benchmarks/tables.py --check), and the check fails when a figure drifts from its file."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import tables  # noqa: E402
from table_defs import TABLES  # noqa: E402


def markers() -> list[tuple[Path, str]]:
    return [(doc, m.group(2)) for doc in tables.documents(ROOT) for m in tables.MARKER.finditer(doc.read_text())]


def test_every_table_matches_its_results_files(capsys):
    assert tables.main(["--check"]) == 0, capsys.readouterr().err
    found = markers()
    assert {name for _, name in found} == set(TABLES)  # every table is shown somewhere, every marker known
    assert any(doc.name == "README.md" for doc, _ in found)


def test_the_results_page_holds_every_table():
    """docs/results.md is the one page with every results table (README and the other docs show
    some of them again)."""
    page = (ROOT / "docs" / "results.md").read_text()
    assert {m.group(2) for m in tables.MARKER.finditer(page)} == set(TABLES)


def first_number_path(data, path=(), kinds=(float,)):
    """The path of the first number of ``kinds`` in a results file (skipping the bookkeeping fields)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in ("commit", "date", "machine", "load_average", "command", "seeds", "args"):
                continue
            found = first_number_path(v, path + (k,), kinds)
            if found:
                return found
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found = first_number_path(v, path + (i,), kinds)
            if found:
                return found
    elif isinstance(data, kinds) and not isinstance(data, bool):
        return path
    return None


@pytest.mark.parametrize("name", sorted(TABLES))
def test_changing_one_figure_fails_the_check(name, tmp_path, capsys):
    """For each table, change the figure of a results file that it shows: --check names the table."""
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    seen: list[str] = []

    def recording(file: str) -> dict:
        seen.append(file)
        return tables.Results(results)(file)

    before = TABLES[name](recording)
    files = {file: json.loads((results / f"{file}.json").read_text()) for file in dict.fromkeys(seen)}
    for file, data in files.items():
        # a per-run list first, then a headline field, then the first float or count, then any float
        candidates = [
            p for key in ("values", "ratio", "value", "mean", "median") for p in list(paths_to(data, key))[:1]
        ]
        candidates += [p for p in (first_number_path(data), first_number_path(data, kinds=(int,))) if p]
        candidates += list(number_paths(data))
        for path in candidates:
            target = data
            for k in path[:-1]:
                target = target[k]
            original = target[path[-1]]
            target[path[-1]] = (
                (original * 1.37 + 0.123)
                if isinstance(original, (int, float))
                else [v * 1.37 + 0.123 for v in original]
            )
            if TABLES[name](files.__getitem__) != before:  # in memory; then on disk for --check
                (results / f"{file}.json").write_text(json.dumps(data))
                break
            target[path[-1]] = original
        else:
            continue
        break
    else:
        pytest.fail(f"no figure of {seen} changes table {name}")
    assert tables.main(["--check", "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"table\(s\) [^\n]*\b{re.escape(name)}\b[^\n]* differ", err), err


def number_paths(data, path=()):
    """The path of every float of a results file (skipping the bookkeeping fields), in order."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k not in ("commit", "date", "machine", "load_average", "command", "seeds", "args"):
                yield from number_paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from number_paths(v, path + (i,))
    elif isinstance(data, float):
        yield path


def paths_to(data, key, path=()):
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key and (
                isinstance(v, float) or (isinstance(v, list) and v and all(isinstance(x, float) for x in v))
            ):
                yield path + (k,)
            else:
                yield from paths_to(v, key, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths_to(v, key, path + (i,))


def test_unknown_table_and_missing_results_are_named(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("<!-- table: no-such-table -->\n| x |\n<!-- /table -->\n")
    (root / "docs" / "a.md").write_text("<!-- table: gan2d -->\n<!-- /table -->\n")
    assert tables.main(["--check", "--root", str(root), "--results", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "unknown table 'no-such-table'" in err
    assert "gan2d.json does not exist: run the benchmark that writes it" in err


def garble_summaries(data):
    """Every stored summary of per-run values made nonsense: the mean, std and median beside a
    ``values`` list, and any ``summary`` block whole."""
    if isinstance(data, dict):
        if "values" in data:
            for key in ("mean", "std", "median"):
                if key in data:
                    data[key] = 12345.678
        if "summary" in data:
            data["summary"] = {}
        for value in data.values():
            garble_summaries(value)
    elif isinstance(data, list):
        for value in data:
            garble_summaries(value)
    return data


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_table_computes_its_figures_from_the_per_run_values(name, tmp_path):
    """No table reads a stored mean, std, median or summary where the per-run values are in the
    file: garbling them all leaves every table as it was."""
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    before = TABLES[name](tables.Results(results))
    for path in results.glob("*.json"):
        path.write_text(json.dumps(garble_summaries(json.loads(path.read_text()))))
    assert TABLES[name](tables.Results(results)) == before


def test_a_rerun_with_append_keeps_every_run_in_one_file(tmp_path, monkeypatch):
    """`bench_speed.py --name NAME --append` (common.save(append=True)): the earlier run and the new
    one, each with its own provenance, under ``reruns`` of one results file, oldest first."""
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    common.save("bench", {"value": 1.0})
    common.save("bench", {"value": 2.0}, append=True)
    common.save("bench", {"value": 3.0}, append=True)
    runs = tables.Results(tmp_path)("bench")["reruns"]
    assert [r["value"] for r in runs] == [1.0, 2.0, 3.0] and all("commit" in r and "machine" in r for r in runs)
    common.save("bench", {"value": 4.0})  # without --append: one run, as before
    assert json.loads((tmp_path / "bench.json").read_text())["value"] == 4.0


def test_every_results_file_is_shown_by_a_table():
    """No results file that no table reads (autoencoder_preset.json is the evidence test_trainer
    checks the mlp-autoencoder preset against)."""
    seen = set()
    results = tables.Results(ROOT / "benchmarks" / "results")

    def recording(file: str) -> dict:
        seen.add(file)
        return results(file)

    for fn in TABLES.values():
        fn(recording)
    files = {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.json")}
    assert files - seen == {"autoencoder_preset"}
