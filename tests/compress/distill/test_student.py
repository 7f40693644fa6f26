"""Students built from their teacher: layer selection, shape-checked copies, narrower widths, and
a saved student that AutoModel loads and edgekit exports."""

from __future__ import annotations

import pytest
import torch

from edgekit.compress.distill.student import build_student, save_student
from edgekit.errors import InputError


@pytest.fixture(scope="module")
def teacher(tiny_models):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(tiny_models("bert"))).eval()


def test_student_layer_i_starts_from_the_mapped_teacher_layer(teacher):
    student, plan = build_student(teacher, keep=[2])
    assert student.config.num_hidden_layers == 1 and plan.teacher_layers == [2]
    assert not plan.initialised
    s, t = student.state_dict(), teacher.state_dict()
    assert torch.equal(
        s["encoder.layer.0.attention.self.query.weight"], t["encoder.layer.1.attention.self.query.weight"]
    )
    assert torch.equal(s["embeddings.word_embeddings.weight"], t["embeddings.word_embeddings.weight"])


def test_narrower_student_copies_only_what_fits(teacher):
    student, plan = build_student(teacher, keep=[1, 2], hidden=16, heads=2, ffn=32)
    assert student.config.hidden_size == 16 and plan.num_heads == 2
    assert "encoder.layer.0.attention.self.query.weight" in plan.initialised
    assert "embeddings.word_embeddings.weight" in plan.initialised  # (vocab, 16) vs (vocab, 32)
    assert all(student.state_dict()[n].shape == teacher.state_dict()[n].shape for n in plan.copied)


def test_bad_student_shapes(teacher):
    with pytest.raises(InputError, match="teacher layers 1..2"):
        build_student(teacher, keep=[3])
    with pytest.raises(InputError, match="not divisible"):
        build_student(teacher, keep=[1], hidden=30, heads=4)


def test_saved_student_loads_and_exports(teacher, tiny_models, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from edgekit.export import ExportConfig, export_model

    from ...conftest import add_sentence_transformers_files

    (tmp_path / "teacher-st").mkdir()
    teacher_dir = add_sentence_transformers_files(tmp_path / "teacher-st", "mean")
    student, _ = build_student(teacher, keep=[2])
    out = tmp_path / "student"
    save_student(student, AutoTokenizer.from_pretrained(str(tiny_models("bert"))), teacher_dir, out)
    assert (out / "model.safetensors").is_file() and (out / "1_Pooling" / "config.json").is_file()
    assert AutoModel.from_pretrained(str(out)).config.num_hidden_layers == 1
    art = export_model(ExportConfig(model=out, out=tmp_path / "onnx"), quiet=True)
    assert (art / "model.onnx").is_file()
