"""Exports of the packaged models (edgekit/assets.py), made once and kept in edgekit's cache."""

from __future__ import annotations

from pathlib import Path

from edgekit.artifacts import cache_dir, cache_lock
from edgekit.assets import PackagedCT2, PackagedGGUF, PackagedModel


def cached_export(model: PackagedModel | PackagedGGUF | PackagedCT2, key: str, **export_options) -> Path:
    """Export a packaged model once and reuse it; keyed by the package version, edgekit version,
    the export revision (bumped whenever what export writes changes) and ``key``.

    A cached folder is reused only when its manifest is complete and its source hash matches.
    """
    from edgekit import __version__
    from edgekit.export import EXPORT_REVISION

    src = model.source_dir()
    out = (
        cache_dir()
        / "artifacts"
        / f"{model.dist}-{model.version()}-edgekit{__version__}r{EXPORT_REVISION}-{key}"
    )
    with cache_lock(out):
        if _usable(out, src):
            return out
        _export(model, key, out, export_options)
    return out


def _usable(out: Path, src: Path) -> bool:
    from edgekit.artifacts import MANIFEST, hash_folder, read_manifest, sha256_file
    from edgekit.errors import InputError

    if (out / MANIFEST).is_file():
        try:
            manifest = read_manifest(out)
        except InputError:  # damaged: export it again
            return False
        intact = all(
            (out / name).is_file() and sha256_file(out / name) == entry["sha256"]
            for name, entry in manifest.get("files", {}).items()
        )
        if (
            intact
            and manifest.get("source", {}).get("sha256") == hash_folder(src)
            and manifest.get("validation", {}).get("passed")
        ):
            return True
    return False


def _export(
    model: PackagedModel | PackagedGGUF | PackagedCT2, key: str, out: Path, export_options: dict
) -> None:
    from edgekit.export import ExportConfig, export_model

    src = model.source_dir()
    target = export_options.get("target", "onnx")
    if target == "ort" and key != "ort":
        src = cached_export(
            model, "ort", target="ort"
        )  # quantize the cached ORT graph instead of exporting again
    elif target == "android" and isinstance(model, PackagedGGUF):
        src = cached_export(model, "ort", target="ort")  # its .ort is the ORT graph (fused attention)
    elif target == "openvino" and isinstance(model, PackagedGGUF):
        pass  # decoders go to OpenVINO straight from PyTorch (export/openvino_ir.py): no ONNX needed
    elif target != "onnx" and key != "ort":
        src = cached_export(model, "onnx")  # convert the cached, validated ONNX instead of exporting again
    export_model(ExportConfig(model=src, out=out, overwrite=True, **export_options))
