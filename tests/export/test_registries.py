"""The kinds and targets registries: every entry loads and declares what the pipeline reads, and
unknown names get a did-you-mean line. (The backend registry has tests/runtimes/test_registry.py.)"""

from __future__ import annotations

import pytest

from edgekit.errors import InputError
from edgekit.export.targets import TargetBase, get_target, list_targets
from edgekit.models.kinds import get_kind, kind_for_task, list_kinds, resolve_kind


@pytest.mark.parametrize("entry", list_targets(), ids=lambda e: e.name)
def test_every_target_loads_and_declares_its_precisions(entry):
    target = get_target(entry.name)
    assert isinstance(target, TargetBase) and target.name == entry.name
    assert target.graph_precisions  # every target serves stateless graphs
    if not target.decoder_precisions:  # one that takes no decoder yet says what to use instead
        with pytest.raises(InputError, match="--target ort"):
            target.decoder(None, None)
    assert set(target.precisions) == set(
        target.graph_precisions + target.decoder_precisions + target.seq2seq_precisions
    )
    with pytest.raises(InputError, match=f"--precision int3 is not available for --target {entry.name}"):
        target.check_precision("int3")


def test_unknown_target_and_kind_say_did_you_mean():
    with pytest.raises(InputError, match="unknown export target 'onx'") as exc:
        get_target("onx")
    assert "onnx" in exc.value.hint
    with pytest.raises(InputError, match="unknown model kind 'decodr'"):
        get_kind("decodr")


@pytest.mark.parametrize("entry", list_kinds(), ids=lambda e: e.name)
def test_every_kind_has_its_definition_and_export(entry):
    definition, exporter = entry.module(), entry.export_module()
    for name in ("TASKS", "claims", "spec_for", "build", "reference_io", "model_types"):
        assert hasattr(definition, name), f"{entry.definition} lacks {name}"
    for name in ("check", "export"):
        assert callable(getattr(exporter, name)), f"{entry.exporter} lacks {name}"
    for task in entry.tasks:
        assert kind_for_task(task) is entry  # a task names exactly one kind
    for model_type in definition.model_types():
        definition.spec_for(model_type)


@pytest.mark.parametrize(
    ("config", "task", "kind", "resolved"),
    [
        ({"model_type": "bert"}, "auto", "encoder", "auto"),
        (
            {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
            "auto",
            "decoder",
            "text-generation",
        ),
        ({"model_type": "llama", "architectures": ["LlamaModel"]}, "auto", "encoder", "auto"),
        ({"model_type": "t5", "is_encoder_decoder": True}, "auto", "seq2seq", "seq2seq"),
        ({"model_type": "vit"}, "auto", "vision", "image-feature-extraction"),
        ({"model_type": "bert"}, "sentence-embedding", "encoder", "sentence-embedding"),
    ],
)
def test_resolve_kind_from_config_and_task(config, task, kind, resolved):
    entry, got = resolve_kind(task, config)
    assert (entry.name, got) == (kind, resolved)


def test_resolve_kind_refuses_a_task_the_model_cannot_do():
    with pytest.raises(InputError, match="task 'text-generation' does not apply to the vision model 'vit'"):
        resolve_kind("text-generation", {"model_type": "vit"})
    with pytest.raises(InputError, match="unknown task 'text-genration'"):
        resolve_kind("text-genration", {"model_type": "bert"})
