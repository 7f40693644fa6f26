"""Weight-only INT8 / INT4 for KV-cache decoders on ONNX Runtime and OpenVINO: a tiny Llama with a
tied LM head (so the head's transposed weight must be materialised to be quantized), and the real
SmolLM2 on ONNX Runtime, with greedy generation compared against transformers fp32."""

from __future__ import annotations

import json

import onnx
import pytest

from ..conftest import int8_dot_products, run_cli
from .test_decoder_families import TINY_DECODERS, make_tiny_decoder


@pytest.fixture(scope="module")
def tied_llama(tmp_path_factory):
    TINY_DECODERS["llama-tied"] = ("LlamaConfig", {**TINY_DECODERS["llama"][1], "tie_word_embeddings": True})
    try:
        return make_tiny_decoder(tmp_path_factory.mktemp("tied"), "llama-tied")
    finally:
        del TINY_DECODERS["llama-tied"]


@pytest.mark.parametrize(
    "target,precision", [("ort", "int4"), ("openvino", "int8"), ("openvino", "int4")]
)  # ORT int8: the real SmolLM2 below
def test_tiny_decoder_weight_only(tied_llama, tmp_path, target, precision):
    out = tmp_path / f"{target}-{precision}"
    result = run_cli(
        "export", "--model", str(tied_llama), "--target", target, "--precision", precision, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())
    quant, greedy = m["export"]["quantization"], m["validation"]["greedy_generation"]
    assert quant["mode"] == "weight-only" and m["validation"]["fp32"]["passed"]
    assert greedy["prompts"] == 3 and greedy["new_tokens"] == 32 and 0 <= greedy["identical_prompts"] <= 3
    assert "greedy tokens identical to transformers fp32 on" in result.stdout
    if target == "ort":
        graph = onnx.load(str(out / "model.onnx"))
        assert quant["materialized_transposed_weights"] == 1
        assert (
            [n.op_type for n in graph.graph.node].count("MatMulNBits")
            == quant["quantized_matmuls"]
            == 2 * 4 + 1
        )  # q, k, v merged, gate and up merged; + the tied head
        bits = {
            a.i
            for n in graph.graph.node
            if n.op_type == "MatMulNBits"
            for a in n.attribute
            if a.name == "bits"
        }
        assert bits == {4}
    else:
        assert m["export"]["weights"] == precision and m["export"]["stateful"]
        if precision == "int4":
            assert quant["group_size"] == 32  # 128 and 64 do not divide the FFN width 96

    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    text = generate_text(out, "the city council voted", GenerationConfig(max_new_tokens=6), backend=target)
    assert 1 <= len(text.token_ids) <= 6 and (len(text.token_ids) == 6 or text.stopped_by == "eos")


def test_real_smollm2_int8_weight_only_on_ort():
    """The cached SmolLM2 ORT graph (GroupQueryAttention) with int8 weights, as the benchmark uses it."""
    from edgekit.assets import SMOLLM2
    from edgekit.export.cached import cached_export

    out = cached_export(SMOLLM2, "ort-int8", target="ort", precision="int8")
    m = json.loads((out / "manifest.json").read_text())
    assert m["export"]["attention"] == "GroupQueryAttention" and m["export"]["from_artifact"].endswith("-ort")
    quant, greedy = m["export"]["quantization"], m["validation"]["greedy_generation"]
    assert {
        a.i
        for n in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.node
        if n.op_type == "MatMulNBits"
        for a in n.attribute
        if a.name == "bits"
    } == {8}
    assert quant["quantized_matmuls"] == 30 * 4 + 1  # q, k and v merged, and gate and up
    assert quant["materialized_transposed_weights"] == 1
    assert (
        sum((out / n).stat().st_size for n in ("model.onnx", "model.onnx.data")) < 0.55 * 517 * 2**20
    )  # int8 head and layers
    prefixes = greedy.get("matching_prefix", [32, 32, 32])
    # measured: 28, 24 and 15 of 32 tokens before the first difference (VNNI); 28, 4, 15 without
    assert min(prefixes) >= (8 if int8_dot_products() else 4)


def test_real_smollm2_keeps_its_gguf_blocks_on_ort():
    """The packaged Q4_1 GGUF's own blocks in the cached SmolLM2 ORT graph: every weight found, the
    blocks equal to the dequantized model with float compute, and the artifact generates."""
    from edgekit.assets import SMOLLM2
    from edgekit.export.cached import cached_export
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    out = cached_export(SMOLLM2, "ort-gguf", target="ort", precision="gguf")
    m = json.loads((out / "manifest.json").read_text())
    quant, validation = m["export"]["quantization"], m["validation"]
    assert m["export"]["precision"] == "gguf" and m["export"]["attention"] == "GroupQueryAttention"
    assert quant["gguf_matmuls"] == {
        "Q4_0": 0,
        "Q4_1": 30 * 4,
        "Q8_0": 1,
    }  # q, k, v merged (rows of 3 tensors), gate and up merged (rows of 2)
    assert quant["float_matmuls"] == 0
    exact = validation["gguf_blocks_exact"]
    assert exact["passed"] and exact["max_abs_diff"]["logits"] <= 5e-4 and exact["accuracy_level"] == 0
    assert quant["accuracy_level"] == 4 and validation["greedy_generation"]["prompts"] == 3
    size = sum((out / n).stat().st_size for n in ("model.onnx", "model.onnx.data"))
    assert size < 0.5 * 517 * 2**20  # 4-bit layers, 8-bit head (the float embedding table stays)
    text = generate_text(out, "The capital of France is", GenerationConfig(max_new_tokens=4), backend="ort")
    assert text.text.strip().startswith("Paris")


def test_gguf_source_and_precision_are_planned(tmp_path, tied_llama):
    """A .gguf --model exports its own blocks by default on ort and its fp32 weights elsewhere;
    --precision gguf without a GGUF says what it needs (one line, nothing written)."""
    from edgekit.assets import SMOLLM2
    from edgekit.export import ExportConfig
    from edgekit.export.api import plan_export

    gguf = SMOLLM2.gguf_dir() / SMOLLM2.gguf_file
    job = plan_export(ExportConfig(model=gguf, out=tmp_path / "a", target="ort"))
    assert job.cfg.precision == "gguf" and job.gguf_file == gguf and job.model_dir == SMOLLM2.hf_folder()
    assert (
        plan_export(ExportConfig(model=gguf.parent, out=tmp_path / "b", target="openvino")).cfg.precision
        == "fp32"
    )
    result = run_cli(
        "export",
        "--model",
        str(tied_llama),
        "--target",
        "ort",
        "--precision",
        "gguf",
        "--out",
        str(tmp_path / "c"),
    )
    assert result.returncode != 0 and "--model is no GGUF file" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "c").exists()


def test_tiny_decoder_bf16_on_openvino(tied_llama, tmp_path):
    """--precision bf16: the validated f32 IR run by OpenVINO's CPU plugin in bf16, its drift
    reported; on a CPU without bf16 instructions, refused before any work."""
    from edgekit.artifacts import cpu_info

    out = tmp_path / "bf16"
    result = run_cli(
        "export", "--model", str(tied_llama), "--target", "openvino", "--precision", "bf16", "--out", str(out)
    )
    if not {"avx512_bf16", "amx_bf16"} & set(cpu_info()["features"]):
        assert result.returncode != 0 and "needs a CPU with bf16 instructions" in result.stderr
        assert not out.exists()
        return
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["export"]["inference_precision"] == "bf16" == m["validation"]["inference_precision"]
    assert m["validation"]["fp32"]["passed"] and m["validation"]["fp32"]["inference_precision"] == "f32"
    assert 0 < m["validation"]["max_abs_diff"]["logits"] < 1.0  # bf16 moves logits, but not far
    assert m["validation"]["greedy_generation"]["prompts"] == 3 and "run in bf16" in result.stdout


def test_tiny_decoder_fp16_weights_on_openvino(tied_llama, tmp_path):
    """--precision fp16 on a decoder: the IR stores its weights as fp16 and runs in f32 (any x86 CPU
    converts them as it reads), validated on the logits relative to their scale, greedy tokens reported."""
    import openvino as ov
    from safetensors.torch import load_file

    out = tmp_path / "fp16"
    result = run_cli(
        "export", "--model", str(tied_llama), "--target", "openvino", "--precision", "fp16", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["export"]["weights"] == "fp16" and m["export"]["inference_precision"] == "f32"
    v = m["validation"]
    assert v["passed"] and v["rtol"] == 5e-3 and 0 < v["max_abs_diff"]["logits"] < 0.1
    assert v["greedy_generation"]["prompts"] == 3 and v["greedy_generation"]["new_tokens"] == 32
    model = ov.Core().read_model(str(out / "model.xml"))
    types = {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant"
    }
    assert "f16" in types  # the weights themselves, not an f32 copy
    params = sum(t.numel() for t in load_file(str(tied_llama / "model.safetensors")).values())
    assert (out / "model.bin").stat().st_size < 0.6 * 4 * params  # about 2 bytes a weight, not 4


def test_a_file_that_is_no_gguf_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file")
    result = run_cli("export", "--model", str(bad), "--target", "ort", "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and "transformers cannot read" in result.stderr
    assert "GGUF magic" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
