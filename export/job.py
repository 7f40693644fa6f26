"""One export, as the kinds and targets see it: a frozen ``ExportJob`` instead of long argument
lists, and the steps every kind shares (convert a module to ONNX and check it, take the graph of
a prior ONNX artifact, copy the files a user needs beside the graph)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.export.config import ExportConfig

log = logging.getLogger("edgekit.export")

# Files a user needs beside the graph to use it (tokenizer, config, sentence-transformers pooling).
SUPPORT_FILES = (
    "config.json",
    "generation_config.json",
    "chat_template.jinja",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "added_tokens.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "preprocessor_config.json",
    "processor_config.json",
)


@dataclass(frozen=True)
class ExportJob:
    cfg: ExportConfig
    model_dir: Path
    """The Hugging Face source folder (a prior ONNX artifact's source when ``--model`` is one)."""
    raw_config: dict
    spec: Any
    """The family's spec (edgekit/models/specs.py, vision.py)."""
    task: str
    atol: float
    kind: Any
    """The model kind's registry entry (edgekit/models/kinds.py)."""
    target: Any
    """The target object (edgekit/export/targets/)."""
    prior: dict | None = None
    """The manifest of the prior ONNX artifact ``--model`` names, whose validated graph is reused."""
    tmp: Path = Path()
    """The staging folder the artifact is written into (renamed into place at the end)."""
    steps: Any = None
    """Progress steps (edgekit._progress.Steps)."""
    gguf_file: Path | None = None
    """The GGUF file ``--model`` named (``model_dir`` is its dequantized HF folder)."""

    def replace(self, **changes: Any) -> "ExportJob":
        return dataclasses.replace(self, **changes)

    @property
    def from_artifact(self) -> str | None:
        return str(Path(self.cfg.model).expanduser().resolve()) if self.prior else None


class Named:
    """A module with the names of its inputs and outputs, for ``convert_and_check``."""

    def __init__(self, module, input_names, output_names):
        self.module, self.input_names, self.output_names = module, input_names, output_names


def reference_session(job: ExportJob, built: Any, model_file: str | None = None):
    """The PyTorch reference of ``built`` (the module that is exported), as a Session."""
    from edgekit.models.source import weight_bytes
    from edgekit.runtimes.torch_backend import TorchSession

    ref = job.kind.module().reference_io(built, model_file)
    return TorchSession(ref, weight_bytes(job.model_dir))


def convert_and_check(
    job: ExportJob, built, kwargs, axes, dynamic_shapes=None, file_name: str = "model.onnx"
):
    """Convert ``built.module`` to ``tmp/<file_name>`` with the configured exporter and check the graph."""
    import onnx

    from edgekit.export.onnx_export import convert

    cfg = job.cfg
    with job.steps.step(f"convert to ONNX ({file_name})" if file_name != "model.onnx" else "convert to ONNX"):
        path = job.tmp / file_name
        info = convert(
            built.module,
            kwargs,
            built.input_names,
            built.output_names,
            axes,
            path,
            cfg.opset,
            cfg.exporter,
            dynamic_shapes,
        )
        onnx.checker.check_model(str(path))
    return info


def convert_validate(job: ExportJob, built, kwargs, axes, reference, cases):
    """Export and validate on ONNX Runtime against PyTorch (stateless graphs); or take both from a
    prior ONNX artifact."""
    if job.prior is not None:
        return prior_info(job)
    from edgekit.export.validate import compare, require_pass
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    info = convert_and_check(job, built, kwargs, axes)
    with job.steps.step("validate against PyTorch"):
        report = compare(reference, OrtSession(job.tmp / "model.onnx", SessionOptions()), cases, job.atol)
        require_pass(report)
    return info, {"runtime": "onnxruntime", **report.as_dict()}


def prior_info(job: ExportJob):
    """Take the graph(s) of the prior ONNX artifact ``cfg.model`` into ``tmp``, with its converter
    info and validation. Called only where that graph is used (a decoder going to OpenVINO or to
    the fused ORT graph is exported again from its source, so nothing is copied for it)."""
    from edgekit.export.onnx_export import ConvertInfo

    prior = job.prior
    assert prior is not None
    for name in prior["export"].get("model_files", {"model": "model.onnx"}).values():
        shutil.copy2(Path(job.cfg.model).expanduser().resolve() / name, job.tmp / name)
    export = prior["export"]
    return ConvertInfo(export["exporter"], export["opset"], export.get("exporter_fallback_reason")), prior[
        "validation"
    ]


def onnx_artifact(folder: Path) -> dict | None:
    """The manifest of an edgekit fp32 ONNX export artifact in ``folder``, else None."""
    from edgekit.artifacts import MANIFEST, read_manifest
    from edgekit.errors import InputError

    if not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = read_manifest(folder)
    except InputError:
        return None  # a manifest.json that is not edgekit's: the folder is read as a model folder
    export = manifest.get("export", {})
    files = (export.get("model_files") or {"model": "model.onnx"}).values()
    if not all(str(name).endswith(".onnx") and (folder / name).is_file() for name in files):
        return None
    if (
        manifest.get("stage") != "export"
        or export.get("format", "onnx") != "onnx"
        or export.get("precision", "fp32") != "fp32"
    ):
        return None
    return manifest


def io_section(built, shapes: dict[str, list], drop: tuple[str, ...] = ()) -> dict:
    """The manifest's ``inputs``/``outputs``: name, shape (dynamic axes by name) and dtype; and,
    where the folder had no tokenizer, what the graph was validated on instead."""
    from edgekit.models.tokenizer import SEEDED_INPUTS, is_seeded

    seeded = {}
    if is_seeded(getattr(built, "tokenizer", None)):
        log.warning("no tokenizer in the model folder: validating on %s", SEEDED_INPUTS.split(" (")[0])
        seeded = {"validation_inputs": SEEDED_INPUTS}
    return {
        **seeded,
        "inputs": [
            {
                "name": n,
                "shape": shapes[n],
                "dtype": "int64" if not n.startswith("past_key_values") else "float32",
            }
            for n in built.input_names
            if n not in drop
        ],
        "outputs": [{"name": n, "shape": shapes[n], "dtype": "float32"} for n in built.output_names],
    }


def copy_support_files(model_dir: Path, dest: Path) -> list[str]:
    copied = []
    for name in SUPPORT_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, dest / name)
            copied.append(name)
    for pool_dir in model_dir.glob("*_Pooling"):
        if pool_dir.is_dir():
            shutil.copytree(pool_dir, dest / pool_dir.name)
            copied.append(pool_dir.name)
    return copied
