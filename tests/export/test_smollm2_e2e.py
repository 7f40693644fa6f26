"""End to end on the real SmolLM2-135M-Instruct (packaged GGUF, converted once to fp32 and cached)."""

from __future__ import annotations

import json

import pytest

from ..conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smol_src():
    from edgekit.assets import SMOLLM2

    return SMOLLM2.hf_folder()


@pytest.fixture(scope="module")
def smol_artifact():
    """The ONNX Runtime graph (--target ort: GroupQueryAttention), cached between runs."""
    from edgekit.assets import SMOLLM2
    from edgekit.export.cached import cached_export

    return cached_export(SMOLLM2, "ort", target="ort")


def test_manifest_records_cache_layout_and_validation(smol_artifact):
    """(The standard graph of the real model is made and checked by the OpenVINO export below, from
    the same module; tiny decoders check the standard ONNX graph of every family.)"""
    manifest = json.loads((smol_artifact / "manifest.json").read_text())
    assert manifest["export"]["cache"] == {
        "num_layers": 30,
        "kv_heads": 3,
        "head_dim": 64,
        "uses_position_ids": True,
        "layout": "batch, kv_heads, sequence, head_dim",
    }
    assert manifest["export"]["attention"] == "GroupQueryAttention"
    assert manifest["validation"]["max_abs_diff"]["logits"] <= 5e-4
    assert manifest["validation"]["max_abs_diff"]["present.29.value"] <= 5e-4
    assert manifest["validation"]["greedy_generation"] == {
        "prompts": 3,
        "new_tokens": 8,
        "identical": True,
        "identical_prompts": 3,
    }
    assert manifest["export"]["eos_token_ids"] == [2]
    assert (smol_artifact / "chat_template.jinja").is_file() or "chat_template" in (
        smol_artifact / "tokenizer_config.json"
    ).read_text()


def test_generate_cli_matches_pytorch_greedy(smol_artifact, smol_src):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smol_src))
    model = AutoModelForCausalLM.from_pretrained(str(smol_src), dtype=torch.float32).eval()
    for prompt in ("The capital of France is", "Water boils at a temperature of"):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            expected = tok.decode(
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)[
                    0, ids.shape[1] :
                ],
                skip_special_tokens=True,
            )
        result = run_cli("generate", str(smol_artifact), "--prompt", prompt, "--max-new-tokens", "12")
        assert result.returncode == 0, result.stderr
        assert result.stdout.rstrip("\n") == expected
        assert prompt != "The capital of France is" or "Paris" in result.stdout


def test_sampling_is_seeded_and_chat_template_applies(smol_artifact):
    args = (
        "generate",
        str(smol_artifact),
        "--prompt",
        "Name a colour.",
        "--chat",
        "--do-sample",
        "--temperature",
        "0.7",
        "--top-p",
        "0.9",
        "--max-new-tokens",
        "12",
    )
    first, again = run_cli(*args, "--seed", "1"), run_cli(*args, "--seed", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    assert first.stdout.strip()
    assert "<|im_start|>" not in first.stdout


def test_stop_string_cuts_the_output(smol_artifact):
    result = run_cli(
        "generate",
        str(smol_artifact),
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "12",
        "--stop",
        ".",
    )
    assert result.returncode == 0, result.stderr
    assert "." not in result.stdout and "Paris" in result.stdout


@pytest.mark.parametrize(
    "extra,needle",
    [
        (("--max-new-tokens", "9000"), "exceeds the model's context of 8192"),
        (("--temperature", "0.5"), "only apply when sampling"),
        (("--do-sample", "--top-p", "1.5"), "--top-p must be in (0, 1]"),
    ],
)
def test_generate_bad_options_fail_in_one_line(smol_artifact, extra, needle):
    result = run_cli("generate", str(smol_artifact), "--prompt", "Hi", *extra)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_generate_on_an_encoder_artifact_says_so(minilm_artifact):
    result = run_cli("generate", str(minilm_artifact), "--prompt", "Hi")
    assert result.returncode == 2 and "not a text-generation model" in result.stderr


@pytest.fixture(scope="module")
def smol_ov(smol_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("smol-ov") / "art"
    result = run_cli(
        "export", "--model", str(smol_src), "--target", "openvino", "--out", str(out), timeout=900
    )
    assert result.returncode == 0, result.stderr
    assert (
        "validated on openvino" in result.stdout
        and "greedy tokens identical to transformers on 3 prompts" in result.stdout
    )
    return out


def test_openvino_generation_matches_onnx_runtime_and_pytorch(smol_ov, smol_artifact):
    """OpenVINO (stateful, from the standard graph) and ONNX Runtime (GroupQueryAttention graph) print the same text."""
    manifest = json.loads((smol_ov / "manifest.json").read_text())
    assert manifest["export"]["stateful"] and manifest["validation"]["inference_precision"] == "f32"
    # (the export itself checked greedy tokens against transformers on 3 prompts; one prompt here
    # checks the CLI's whole path, tokenizer to printed text, on both runtimes)
    prompt = "Water boils at a temperature of"
    ov = run_cli("generate", str(smol_ov), "--prompt", prompt, "--max-new-tokens", "12")
    ort = run_cli("generate", str(smol_artifact), "--prompt", prompt, "--max-new-tokens", "12")
    assert ov.returncode == 0, ov.stderr
    assert ov.stdout == ort.stdout and ov.stdout.strip()
