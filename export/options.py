"""Checks of the export options that compression reads, made before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import InputError

NEEDS_CALIBRATION = ("int8",)
WEIGHT_ONLY = ("int8", "int4")
"""What --precision means for a KV-cache decoder: weight-only quantization (decode is memory-bound)."""
PARITY_TOKENS = 8
"""Greedy tokens compared with transformers' generate on each input for an fp32 graph with a cache."""
WEIGHT_ONLY_PARITY_TOKENS = 32
"""... and for a weight-only graph, where the agreement is reported, not required."""


def check_cached(cfg: Any, precisions: tuple[str, ...], what: str, hint: str) -> None:
    """A model with a KV cache (decoders, encoder-decoders): ``precisions`` are what the target
    writes for it; an integer precision means weight-only, which reads no calibration data; and
    only the torch.export-based exporter traces a rebuilt cache correctly."""
    if cfg.precision not in precisions:
        raise InputError(
            f"--target {cfg.target} --precision {cfg.precision} is not available for {what}", hint
        )
    for option, value in (
        ("--calib", cfg.calib),
        ("--max-drop", cfg.max_drop),
        ("--eval-data", cfg.eval_data),
    ):
        if value is None:
            continue
        if cfg.precision in (*WEIGHT_ONLY, "gguf"):
            raise InputError(
                f"{option} does not apply to a decoder's weight-only {cfg.precision}",
                "drop the option; generation is compared with fp32 instead",
            )
        raise InputError(
            f"{option} does not apply to --precision {cfg.precision} of {what}",
            "drop the option; the export is validated against PyTorch instead",
        )
    if cfg.exporter == "torchscript":
        raise InputError(
            "the TorchScript exporter cannot export a KV-cache decoder correctly",
            "use --exporter dynamo (the default)",
        )


def check_int8_options(cfg: Any, target: Any) -> None:
    """Everything about the INT8 options of a stateless graph that can be wrong, checked before any work."""
    from edgekit.calibration.dataset import check_calib_path
    from edgekit.calibration.ranges import RangeMethod

    if cfg.precision == "int4":
        raise InputError(
            "--precision int4 is weight-only, for decoders", "use --precision int8 for an encoder"
        )
    int8 = cfg.precision.startswith("int8")
    if not int8:
        for option, value in (
            ("--calib", cfg.calib),
            ("--max-drop", cfg.max_drop),
            ("--eval-data", None if target.measures_float_quality else cfg.eval_data),
        ):
            if value is not None:
                raise InputError(
                    f"{option} applies only to INT8 exports, not --precision {cfg.precision}",
                    "add --precision int8, or drop the option",
                )
        return
    if cfg.precision in NEEDS_CALIBRATION:
        check_text_data(check_calib_path(cfg.calib), cfg.encoding)
        RangeMethod(cfg.calib_method, cfg.percentile).check()
    elif cfg.calib is not None:
        raise InputError(
            f"--precision {cfg.precision} takes its ranges at run time and reads no --calib",
            "drop --calib, or use --precision int8 (static)",
        )
    if not 0 <= cfg.smooth_alpha <= 1:
        raise InputError(
            f"--smooth-quant must be between 0 and 1, got {cfg.smooth_alpha}",
            "pass e.g. --smooth-quant 0.8, or 0 to turn it off",
        )
    if cfg.calib_size < 1:
        raise InputError(
            f"--calib-size must be at least 1, got {cfg.calib_size}", "pass e.g. --calib-size 128"
        )
    if any(s < 2 for s in cfg.seq_lens):
        raise InputError(
            f"--seq-len values must be at least 2, got {list(cfg.seq_lens)}", "pass e.g. --seq-len 128"
        )
    if cfg.max_drop is not None:
        if not 0 < cfg.max_drop < 1:
            raise InputError(
                f"--max-drop must be between 0 and 1, got {cfg.max_drop}", "pass e.g. --max-drop 0.01 (1%)"
            )
        if cfg.eval_data is None:
            raise InputError(
                "--max-drop needs held-out data to measure the drop on",
                "pass --eval-data with texts (a .jsonl with a 'label' field adds accuracy)",
            )
    if cfg.eval_data is not None and not Path(cfg.eval_data).expanduser().exists():
        raise InputError(
            f"--eval-data '{cfg.eval_data}' does not exist",
            "pass a .txt/.jsonl file or a folder of .txt files",
        )
    if cfg.eval_data is not None:
        check_text_data(Path(cfg.eval_data).expanduser(), cfg.encoding)


def check_text_data(path: Path, encoding: str | None) -> None:
    """Text data (not images, not WAV files) is read once before any work, so a file that does not
    decode or holds no text fails first, not after the export."""
    from edgekit.calibration.audio import audio_files
    from edgekit.calibration.dataset import is_image_folder
    from edgekit.calibration.text import load_texts

    if not is_image_folder(path) and not audio_files(path):
        load_texts(path, encoding=encoding)
