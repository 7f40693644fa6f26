"""The source model folder a user hands in: its config and its weight files."""

from __future__ import annotations

from pathlib import Path

from edgekit.artifacts import read_json
from edgekit.errors import InputError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def read_model_config(model_dir: Path) -> dict:
    """``config.json`` of a Hugging Face model folder, with one clear line for what is wrong."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.exists():
        raise InputError(
            f"model folder '{model_dir}' does not exist", "pass a Hugging Face model folder with --model"
        )
    if not model_dir.is_dir():
        raise InputError(
            f"--model '{model_dir}' is a file, not a folder", "pass the folder that holds config.json"
        )
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise InputError(
            f"'{model_dir}' has no config.json, so it is not a Hugging Face model folder",
            "pass the folder that holds config.json and the weights",
        )
    return read_json(cfg_file, "fix the file")


def weight_files(model_dir: Path) -> list[Path]:
    return [p for p in Path(model_dir).iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES]


def weight_bytes(model_dir: Path) -> int:
    """Bytes on disk of the folder's weight files (what the PyTorch reference loads)."""
    return sum(p.stat().st_size for p in weight_files(model_dir))
