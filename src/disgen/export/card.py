"""The model card, ``README.md`` beside the exported files, in the Hugging Face style: YAML front
matter (``library_name``, ``tags``, ``datasets``, ``pipeline_tag``, ``metrics`` and a
``model-index`` with their values) and a body with the model, dataset, preset and resolved config,
the input and output contract, the check, the versions and the command that made the export.

Every figure comes from the run directory (``metrics.jsonl``, ``eval.json``) for the exported
checkpoint, or from the check just run; none is recomputed or filled in here. The front matter is
written as YAML by hand (block style, scalars as JSON), so disgen needs no YAML library.

May import: api and every layer below it.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import torch

from disgen import runs
from disgen.api import SPLITS, Run
from disgen.errors import plural
from disgen.export.check import TOLERANCE
from disgen.export.formats import CARD, FORMAT_NAMES, WEIGHTS_FILE, file_names
from disgen.export.networks import Network, Port, export_spec, inference_roles
from disgen.version import __version__

NOT_METRICS = ("dataset", "split", "checkpoint", "checkpoint_epoch", "epoch", "final", "eval_seconds")


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def dataset_id(run: Run) -> str:
    """The dataset's registered name, or a folder's own name (a local path is not shown)."""
    name = run.config.dataset
    return Path(name).name if "/" in name or Path(name).is_dir() else name


def results(run: Run) -> list[dict]:
    """The metrics the run directory holds for the exported checkpoint: the validation metrics of
    its epoch (metrics.jsonl), every evaluation of it in eval.json, and the final test record
    where eval.json lacks it. Each: split, dataset, source, metrics."""
    out = []
    record = next((r for r in run.history if r.get("epoch") == run.epoch), None)
    val = {k[4:]: v for k, v in (record or {}).items() if k.startswith("val_") and is_number(v)}
    if val:
        out.append(
            {"split": "validation", "dataset": run.config.dataset, "source": f"metrics.jsonl, epoch {run.epoch}"}
            | {"metrics": val}
        )
    for r in runs.read_evals(run.dir):
        if r.get("checkpoint") == run.checkpoint and r.get("checkpoint_epoch") == run.epoch:
            metrics = {k: v for k, v in r.items() if k not in NOT_METRICS and is_number(v)}
            split = SPLITS.get(r.get("split", "test"), str(r.get("split")))
            out.append({"split": split, "dataset": str(r.get("dataset")), "source": "eval.json", "metrics": metrics})
    final = run.final or {}
    own_test = any(r["split"] == "test" and r["dataset"] == run.config.dataset for r in out)
    if final.get("checkpoint") == run.checkpoint and final.get("checkpoint_epoch") == run.epoch and not own_test:
        metrics = {k[5:]: v for k, v in final.items() if k.startswith("test_") and is_number(v)}
        out.append(
            {"split": "test", "dataset": run.config.dataset, "source": "metrics.jsonl, final record"}
            | {"metrics": metrics}
        )
    return out


def front_matter(run: Run, fmt: str, found: list[dict]) -> dict:
    export = export_spec(run)
    points = len(run.image_shape) == 1
    pipeline = None if points else export.pipeline
    tags = ["disgen", run.spec.name, *export.tags, fmt, "pytorch"]
    head = {"library_name": "disgen", "tags": list(dict.fromkeys(tags)), "datasets": [dataset_id(run)]}
    if pipeline:
        head["pipeline_tag"] = pipeline
    names = list(dict.fromkeys(k for r in found for k in r["metrics"]))
    if names:
        head["metrics"] = names
    if found:
        head["model-index"] = [
            {
                "name": f"{run.spec.name}-{dataset_id(run)}",
                "results": [
                    {
                        "task": {"type": pipeline or "other"},
                        "dataset": {"name": Path(r["dataset"]).name, "type": Path(r["dataset"]).name}
                        | {"split": r["split"]},
                        "metrics": [
                            {"type": k, "value": v, "name": f"{r['split']} {k}"} for k, v in r["metrics"].items()
                        ],
                    }
                    for r in found
                ],
            }
        ]
    return head


def scalar(v) -> str:
    """A YAML scalar that YAML 1.1 and 1.2 readers read alike (1e-05 is a string to YAML 1.1)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        text = repr(v)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


def yaml_lines(obj, indent: int = 0) -> list[str]:
    """Block-style YAML of dicts, lists and scalars."""
    pad, lines = "  " * indent, []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in items:
        nested = isinstance(value, (dict, list)) and value
        if isinstance(obj, dict):
            if nested:
                lines.append(f"{pad}{key}:")
                lines += yaml_lines(value, indent + (1 if isinstance(value, dict) else 0))
            else:
                lines.append(f"{pad}{key}: {scalar(value) if not isinstance(value, (dict, list)) else '[]'}")
        elif nested:
            sub = yaml_lines(value, 0)
            lines += [f"{pad}- {sub[0]}"] + [f"{pad}  {line}" for line in sub[1:]]
        else:
            lines.append(f"{pad}- {scalar(value)}")
    return lines


def table(head: list[str], rows: list[list]) -> str:
    cell = lambda v: str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def shape(port: Port) -> str:
    return "(" + ", ".join(map(str, port.shape)) + ")"


def contract(run: Run, nets: list[Network]) -> str:
    lo, hi = run.spec.value_range
    ports = [(p, i) for net in nets for i, ports in enumerate((net.inputs, net.outputs)) for p in ports]
    text = ["Every tensor is float32, batch first; the batch axis N is free (any N >= 1)."]
    if any(p.name == "images" and i == 0 for p, i in ports):
        pixel = "p / 255" if (lo, hi) == (0, 1) else f"p / 255 * {hi - lo:g} + {lo:g}"
        text[0] += (
            f" Input images are (N, C, H, W) = (N, {', '.join(map(str, run.image_shape))}) with pixel values in the "
            f"model's value range [{lo:g}, {hi:g}]: a uint8 pixel p is {pixel}."
        )
    if any(p.name == "images" and i == 1 for p, i in ports):
        text[0] += " Output images are in [0, 1] (times 255 for 8-bit pixels)."
    for net in nets:
        rows = [["input", p.name, shape(p), p.range, p.meaning] for p in net.inputs]
        rows += [["output", p.name, shape(p), p.range, p.meaning] for p in net.outputs]
        text.append(f"### {net.name}\n\n{net.computes}.\n\n" + table(["", "name", "shape", "range", "meaning"], rows))
    if run.classes and export_spec(run).shows_classes:
        shown = ", ".join(f"{i}: {c}" for i, c in enumerate(run.classes[:20]))
        text.append(f"Classes by index: {shown}{', ...' if len(run.classes) > 20 else ''}.")
    return "\n\n".join(text)


def usage(run: Run, fmt: str, nets: list[Network]) -> str:
    files = file_names(fmt, [net.name for net in nets])
    if fmt == "safetensors":
        return safetensors_usage(run)
    given = {p.name: p for net in nets for p in net.inputs}
    notes = [f"# {p.name}: a float32 numpy array {shape(p)}, {p.range}" for p in given.values()]
    if fmt == "onnx":
        lines = ["import onnxruntime as ort", "", *notes]
        for net in nets:
            args = ", ".join(f'"{p.name}": {p.name}' for p in net.inputs)
            outs = ", ".join(p.name for p in net.outputs)
            lines.append(f'{outs}, = ort.InferenceSession("{files[net.name]}").run(None, {{{args}}})')
    else:
        lines = ["import torch", "", *(n.replace("numpy array", "tensor") for n in notes)]
        for net in nets:
            outs = ", ".join(p.name for p in net.outputs)
            lines.append(f'{outs} = torch.jit.load("{files[net.name]}")({", ".join(p.name for p in net.inputs)})')
    return "```python\n" + "\n".join(lines) + "\n```"


def safetensors_usage(run: Run) -> str:
    """The networks rebuilt from the file, and the computations above written out on them."""
    lines = [
        "import torch",
        "from disgen.export.weights import load_networks",
        "",
        f'nets, meta = load_networks("{WEIGHTS_FILE}")  # the networks by role, rebuilt in eval mode',
        "with torch.no_grad():",
        *("    " + line for line in export_spec(run).usage(run)),
    ]
    return "```python\n" + "\n".join(lines) + "\n```"


def files_text(run: Run, fmt: str, nets: list[Network]) -> str:
    if fmt == "safetensors":
        roles = inference_roles(run)
        held = (
            f"the state dicts of {', '.join(roles)} (keys ROLE.PARAMETER); its metadata holds the model, its "
            "options (model_args), the image shape and the classes that rebuild them"
        )
        rows = [[WEIGHTS_FILE, held]]
    else:
        files = file_names(fmt, [net.name for net in nets])
        rows = [[files[net.name], f"{net.name}: {net.computes}"] for net in nets]
    rows.append([CARD, "this model card"])
    return table(["file", "holds"], rows)


def metrics_text(run: Run, found: list[dict]) -> str:
    text = [
        f"Read from the run directory for the exported weights (checkpoints/{run.checkpoint}.pt, epoch "
        f"{run.epoch}); none is recomputed by the export."
    ]
    for r in found:
        rows = [[k, scalar(v)] for k, v in r["metrics"].items()]
        text.append(
            f"### {r['split']} split of {Path(r['dataset']).name} ({r['source']})\n\n"
            + table(["metric", "value"], rows)
        )
    if not any(r["split"] == "test" for r in found):
        text.append(
            f"The run directory holds no test evaluation of these weights: `disgen eval {run.dir} --checkpoint "
            f"{run.checkpoint}` measures it once."
        )
    note = export_spec(run).note(run)
    if note:
        text.append(note)
    return "\n\n".join(text)


def training_text(run: Run) -> str:
    data = f"{dataset_id(run)}, images {tuple(run.image_shape)}, {plural(len(run.classes), 'class', 'classes')}"
    rows = [
        ["model", f"{run.spec.name} (objective {run.spec.objective}): {run.spec.description}"],
        ["dataset", data],
        ["preset", run.config.preset],
        ["epochs trained", f"{len(run.history)} of {run.config.epochs}"],
        ["weights", f"checkpoints/{run.checkpoint}.pt, epoch {run.epoch}"],
    ]
    config = json.dumps(run.config.to_dict(), indent=2, sort_keys=True)
    return table(["", ""], rows) + f"\n\nThe resolved config (the run's config.json):\n\n```json\n{config}\n```"


def check_text(fmt: str, checks: list[dict], runtime: str) -> str:
    rows = [
        [c["check"], c["output"], " and ".join(map(str, c["batch_sizes"])), f"{c['max_abs_diff']:.3g}"] for c in checks
    ]
    return (
        f"After writing, the export ran the files in {runtime} against disgen's own outputs (the command named in "
        f"each row, on the same inputs) at two batch sizes; the largest absolute difference allowed is {TOLERANCE:g}."
        "\n\n" + table(["check", "output", "batch sizes", "max abs difference"], rows)
    )


def render(run: Run, fmt: str, nets: list[Network], checks: list[dict], info: dict) -> str:
    """The card's text. ``info``: ``versions`` (by package), ``runtime`` (what ran the check) and
    ``command``."""
    found = results(run)
    head = "---\n" + "\n".join(yaml_lines(front_matter(run, fmt, found))) + "\n---\n"
    versions = {"disgen": __version__, "torch": torch.__version__, **info["versions"]}
    versions["Python"] = platform.python_version()
    sections = [
        f"# {run.spec.name} on {dataset_id(run)}, exported as {FORMAT_NAMES[fmt]}",
        f"Exported by `disgen export` from the run directory `{run.dir}` (checkpoints/{run.checkpoint}.pt, "
        f"epoch {run.epoch}), with the weights in eval mode.",
        "## Files\n\n" + files_text(run, fmt, nets),
        "## Inputs and outputs\n\n" + contract(run, nets),
        "## Usage\n\n" + usage(run, fmt, nets),
        "## Check\n\n" + check_text(fmt, checks, info["runtime"]),
        "## Training\n\n" + training_text(run),
        "## Metrics\n\n" + metrics_text(run, found),
        "## Versions\n\n" + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"## How this export was made\n\n```bash\n{info['command']}\n```",
    ]
    return head + "\n" + "\n\n".join(sections) + "\n"
