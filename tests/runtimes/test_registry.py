from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifacts import read_manifest
from edgekit.errors import InputError, MissingExtraError
from edgekit.runtimes import Session, get_backend, list_backends, load_session
from edgekit.runtimes.registry import BackendEntry


def test_registry_lists_torch_and_ort_with_their_extras():
    entries = {e.name: e for e in list_backends()}
    assert entries["torch"].extra == "torch" and entries["ort"].extra == "ort"
    for entry in entries.values():
        module, _, cls = entry.target.partition(":")
        assert module.startswith("edgekit.runtimes.") and cls


@pytest.mark.parametrize("entry", list_backends(), ids=lambda e: e.name)
def test_every_registered_backend_loads_the_minilm_artifact(entry, request):
    if entry.name == "trt":
        pytest.skip("TensorRT runs engines built on a GPU device; see tests/export/test_tensorrt.py")
    fixture = {"openvino-ir": "minilm_openvino", "android": "minilm_android"}.get(
        entry.formats[0] if entry.formats else "", "minilm_artifact"
    )
    artifact = request.getfixturevalue(fixture)
    session = load_session(artifact, entry.name, threads=1)
    assert isinstance(session, Session)
    assert [s.name for s in session.input_specs()] == ["input_ids", "token_type_ids", "attention_mask"]
    assert [s.name for s in session.output_specs()] == ["last_hidden_state", "sentence_embedding"]
    assert session.model_bytes() > 80 * 2**20
    ids = np.array([[101, 7592, 2088, 102]], dtype=np.int64)
    out = session.run(
        {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
    )
    assert out["sentence_embedding"].shape == (1, 384)
    with pytest.raises(InputError, match="missing \\['attention_mask'\\]"):
        session.run({"input_ids": ids, "token_type_ids": np.zeros_like(ids)})


def test_tensorrt_backend_says_why_it_cannot_run(minilm_artifact):
    from edgekit.runtimes.registry import get_backend_entry
    from edgekit.runtimes.trt_backend import tensorrt_status

    entry = get_backend_entry("trt")
    assert not entry.reads(read_manifest(minilm_artifact))  # no engine in an ONNX artifact
    ok, why = tensorrt_status()
    if not ok:
        assert not entry.available() and why in entry.missing()[0]
        with pytest.raises((InputError, MissingExtraError)):
            load_session(minilm_artifact, "trt")


def test_unknown_backend_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'ort'"):
        get_backend("orт")


def test_missing_extra_names_the_pip_extra(monkeypatch):
    from edgekit.runtimes import registry

    fake = BackendEntry(
        "fake",
        "edgekit.runtimes.ort_backend:OrtBackend",
        "fake-extra",
        ("edgekit_no_such_module",),
        "test entry",
    )
    monkeypatch.setitem(registry._BACKENDS, "fake", fake)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgekit\[fake-extra\]'"):
        get_backend("fake")
