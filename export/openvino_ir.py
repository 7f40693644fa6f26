"""ONNX (already validated) -> OpenVINO IR; decoders become stateful (KV cache kept inside).

    input_ids, attention_mask, position_ids ─> [IR: ReadValue(past.i) ─ attention ─ Assign(present.i)] ─> logits

The past/present pairs of the ONNX graph turn into internal state, so a step sends only the new
tokens and receives only the logits.
"""

from __future__ import annotations

from pathlib import Path


def onnx_to_ir(onnx_path: Path, xml_path: Path, state_pairs: dict[str, str] | None, fp16_weights: bool) -> dict:
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    if state_pairs:
        from openvino._offline_transformations import apply_make_stateful_transformation

        apply_make_stateful_transformation(model, dict(state_pairs))
    ov.save_model(model, str(xml_path), compress_to_fp16=fp16_weights)
    return {"openvino_version": ov.get_version(), "stateful": bool(state_pairs), "weights": "fp16" if fp16_weights else "fp32"}


def replace_ir(model, xml_path: Path) -> None:
    """Save ``model`` as ``xml_path`` (+ .bin) when it was read from that same file: ``read_model``
    memory-maps the .bin, and writing over a mapped file kills the process (SIGBUS), so the new IR
    is written beside it and renamed over it."""
    import openvino as ov

    staged = xml_path.with_name(xml_path.stem + ".new.xml")
    ov.save_model(model, str(staged), compress_to_fp16=False)
    for suffix in (".xml", ".bin"):
        staged.with_suffix(suffix).replace(xml_path.with_suffix(suffix))
