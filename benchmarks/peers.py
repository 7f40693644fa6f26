"""Peer tools' encoder exports, made in the peers' own virtualenvs and wrapped as bench artifacts,
so the bench harness times them in the same run as edgekit's (interleaved, same threads, same
inputs, quality against the same PyTorch reference).

Optimum needs transformers < 4.58 and optimum-intel its own pins, so neither can share edgekit's
environment: each is driven through the ``python`` of a virtualenv where it is installed.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

# What both Optimum scripts end with: the fp32 graph saved, or ORTQuantizer's dynamic INT8 of it.
_SAVE_OR_QUANTIZE = r"""
if mode == "fp32":
    model.save_pretrained(out)
    print("model.onnx")
else:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    ORTQuantizer.from_pretrained(model).quantize(save_dir=out, quantization_config=AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False))
    print("model_quantized.onnx")
"""

# Optimum: export (and with "dynamic-int8", ORTQuantizer's dynamic INT8 for AVX-512 VNNI, the
# configuration Optimum's docs give for this CPU; per-tensor weights, its default).
_OPTIMUM = (
    r"""
import sys
model_dir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
from transformers import AutoTokenizer
from optimum.onnxruntime import ORTModelForFeatureExtraction
model = ORTModelForFeatureExtraction.from_pretrained(model_dir, export=True)
AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
"""
    + _SAVE_OR_QUANTIZE
)

# optimum-intel: OVModelForFeatureExtraction, then OVQuantizer with its default static INT8 config
# (NNCF, transformer model type) calibrated on the same texts as edgekit, padded to ``seq_len``.
_OPTIMUM_INTEL_INT8 = r"""
import sys
model_dir, out, calib, seq_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
import nncf
from transformers import AutoTokenizer
from optimum.intel import OVConfig, OVModelForFeatureExtraction, OVQuantizationConfig, OVQuantizer
tok = AutoTokenizer.from_pretrained(model_dir)
texts = [line.strip() for line in open(calib, encoding="latin-1") if line.strip()]
model = OVModelForFeatureExtraction.from_pretrained(model_dir, export=True, compile=False)
names = {name for port in model.model.inputs for name in port.get_names()}
samples = [{k: v for k, v in tok(t, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np").items() if k in names} for t in texts]
OVQuantizer.from_pretrained(model).quantize(calibration_dataset=nncf.Dataset(samples), ov_config=OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(samples))), save_directory=out)
tok.save_pretrained(out)
print("openvino_model.xml")
"""


# Optimum: ORTModelForCTC's export of a *ForCTC folder (fp32), or with "dynamic-int8" ORTQuantizer's
# dynamic INT8 for AVX-512 VNNI as above; the feature extractor and tokenizer saved beside it.
_OPTIMUM_CTC = (
    r"""
import sys
model_dir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
from transformers import AutoFeatureExtractor, AutoTokenizer
from optimum.onnxruntime import ORTModelForCTC
model = ORTModelForCTC.from_pretrained(model_dir, export=True)
AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
AutoFeatureExtractor.from_pretrained(model_dir).save_pretrained(out)
"""
    + _SAVE_OR_QUANTIZE
)


def _version(python: str, dist: str) -> str:
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version('{dist}'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def _run_peer(python: str, script: str, args: list[str], what: str) -> str:
    """Run a peer script in a scratch folder (whatever it writes besides ``out`` is removed); its last line."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, cwd=scratch)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({python}):\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def wrap_peer(
    out: Path, tool: str, model_dir: Path, model_file: str, fmt: str = "onnx", export: dict | None = None
) -> Path:
    """Write the manifest that lets ``edgekit bench`` load a peer's graph beside edgekit's: the same
    source (so one PyTorch reference serves both) and the graph's input names (``export``: the
    kind's own fields, for kinds other than text encoders)."""
    from edgekit.artifacts import hash_folder, write_json

    if fmt == "onnx":
        import onnx

        inputs = [i.name for i in onnx.load(str(out / model_file), load_external_data=False).graph.input]
        extra = {}
    else:
        import openvino as ov

        inputs = [port.get_any_name() for port in ov.Core().read_model(str(out / model_file)).inputs]
        extra = {"format": "openvino-ir", "inference_precision": "f32"}
    write_json(
        out / "manifest.json",
        {
            "stage": "peer-export",
            "tool": tool,
            "source": {
                "path": str(model_dir),
                "sha256": hash_folder(model_dir),
                "model_type": (export or {}).pop("model_type", "bert"),
            },
            "export": {
                "task": "feature-extraction",
                "model_file": model_file,
                "inputs": [{"name": n} for n in inputs],
                "max_length": 512,
                **extra,
                **(export or {}),
            },
        },
    )
    return out


def optimum_encoder(python: str, model_dir: Path, out: Path, mode: str = "fp32") -> Path:
    """Optimum's export of ``model_dir`` (``mode`` "fp32", or "dynamic-int8" through ORTQuantizer)."""
    model_file = _run_peer(python, _OPTIMUM, [str(model_dir), str(out), mode], f"Optimum {mode} export")
    return wrap_peer(out, f"optimum {_version(python, 'optimum')} ({mode})", model_dir, model_file)


def optimum_intel_int8_encoder(python: str, model_dir: Path, out: Path, calib: Path, seq_len: int) -> Path:
    """optimum-intel's static INT8 IR of ``model_dir`` (OVQuantizer defaults), calibrated on ``calib``."""
    model_file = _run_peer(
        python,
        _OPTIMUM_INTEL_INT8,
        [str(model_dir), str(out), str(calib), str(seq_len)],
        "optimum-intel INT8 quantization",
    )
    return wrap_peer(
        out,
        f"optimum-intel {_version(python, 'optimum-intel')} (OVQuantizer INT8)",
        model_dir,
        model_file,
        fmt="openvino",
    )


def optimum_ctc(python: str, model_dir: Path, out: Path, ctc: dict, mode: str = "fp32") -> Path:
    """Optimum's ``ORTModelForCTC`` export of ``model_dir`` (``mode`` "fp32" or "dynamic-int8"),
    wrapped with edgekit's ``ctc`` section of the same model (rate, frame, blank)."""
    from edgekit.artifacts import read_json

    model_file = _run_peer(
        python, _OPTIMUM_CTC, [str(model_dir), str(out), mode], f"Optimum CTC {mode} export"
    )
    model_type = read_json(model_dir / "config.json", "fix the file")["model_type"]
    export = {"task": "automatic-speech-recognition", "ctc": ctc, "model_type": model_type}
    return wrap_peer(
        out, f"optimum {_version(python, 'optimum')} ({mode})", model_dir, model_file, export=export
    )
