"""Small edits every graph rewrite in compress/ and export/ makes after it swaps nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def drop_unused_initializers(model: Any) -> None:
    """Remove the initializers no node reads and no graph output names (the replaced weights)."""
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def use_contrib_domain(model: Any) -> None:
    """Import ONNX Runtime's ``com.microsoft`` operator set (MatMulNBits, GroupQueryAttention, ...) once."""
    from onnx import helper

    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def save_with_external_data(model: Any, out: Path) -> None:
    """Save with the weights in ``<out>.data`` (the layout weight-only artifacts have). onnx appends
    to an existing file of that name, and one there is a graph's own data (already loaded into
    ``model``) or a stale one, so it is removed first."""
    import onnx

    out.with_name(out.name + ".data").unlink(missing_ok=True)
    onnx.save(model, str(out), save_as_external_data=True, location=out.name + ".data", size_threshold=1024)
