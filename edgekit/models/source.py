"""The source model folder a user hands in: its config and its weight files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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


def check_weights(model_dir: Path) -> None:
    """Fail before any work when the model folder has no weight files."""
    if not weight_files(model_dir):
        raise InputError(
            f"'{model_dir}' has config.json but no weights (model.safetensors or pytorch_model.bin)",
            "copy the model's weight files into the folder",
        )


def load_weights(load: Callable[[], Any], model_dir: Path) -> Any:
    """Run ``load()`` (a ``from_pretrained`` of ``model_dir``); a folder without weights, or weights
    that cannot be read, is named in one line instead of transformers' traceback."""
    import pickle

    check_weights(model_dir)
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - only failures to read the weights are turned into a line
        text = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
            raise InputError(
                f"a weight file in '{model_dir}' is not a plain state dict: loading it would run pickled code, which edgekit never does with a file it is given",
                "where you trust the file, load it with torch.load and save its tensors with safetensors.torch.save_file",
            ) from exc
        if type(exc).__name__ == "SafetensorError" or isinstance(
            exc, (OSError, EOFError, pickle.UnpicklingError)
        ):
            raise InputError(
                f"cannot read the weights in '{model_dir}': {text}",
                "the weight files are damaged or incomplete; copy them again",
            ) from exc
        raise


def load_model(
    auto_class: str, model_dir: Path, attn_implementation: str | None, what: str, needs: str
) -> Any:
    """``transformers.<auto_class>.from_pretrained(model_dir)`` in fp32 and eval mode; a folder it
    cannot load is named in one line (``what``: "the vision model"; ``needs``: what the folder must hold)."""
    import torch
    import transformers

    cls = getattr(transformers, auto_class)
    load = lambda: cls.from_pretrained(  # noqa: E731
        str(model_dir), attn_implementation=attn_implementation, dtype=torch.float32
    )
    try:
        return load_weights(load, Path(model_dir)).eval()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load {what} in '{model_dir}': {exc}".splitlines()[0], needs) from exc
