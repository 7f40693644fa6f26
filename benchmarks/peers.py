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


# Optimum: ORTModelForVision2Seq's export of a captioner folder, timed by itself in its own venv
# (its generate runs its three graphs: encoder, decoder, decoder with past). Per photo: the
# encoder alone, and a greedy generation of exactly ``new_tokens`` tokens; then each photo's
# greedy caption (up to ``caption_tokens`` or EOS), decoded without special tokens.
_OPTIMUM_VISION2SEQ = r"""
import sys, json, time
import numpy as np, torch, onnxruntime as ort
model_dir, out, pixels, new_tokens, caption_tokens, repeat, threads = sys.argv[1:8]
new_tokens, caption_tokens, repeat, threads = int(new_tokens), int(caption_tokens), int(repeat), int(threads)
from transformers import AutoTokenizer
from optimum.onnxruntime import ORTModelForVision2Seq
options = ort.SessionOptions()
options.intra_op_num_threads = threads
model = ORTModelForVision2Seq.from_pretrained(model_dir, export=True, session_options=options)
model.save_pretrained(out)
tok = AutoTokenizer.from_pretrained(model_dir)
photos = torch.from_numpy(np.load(pixels))
torch.set_num_threads(threads)
def run(px, n, min_n):
    return model.generate(pixel_values=px, max_new_tokens=n, min_new_tokens=min_n, do_sample=False, num_beams=1)
run(photos[:1], 4, 4)  # warm-up
encoder, generation = [], []
for _ in range(repeat):
    for i in range(len(photos)):
        px = photos[i : i + 1]
        t0 = time.perf_counter(); model.encoder(pixel_values=px); t1 = time.perf_counter()
        run(px, new_tokens, new_tokens); t2 = time.perf_counter()
        encoder.append(t1 - t0); generation.append(t2 - t1)
captions = [tok.decode(run(photos[i : i + 1], caption_tokens, 0)[0], skip_special_tokens=True).strip() for i in range(len(photos))]
enc = float(np.median(encoder))
print(json.dumps({"encoder_ms": enc * 1e3, "tokens_per_s": new_tokens / (float(np.median(generation)) - enc), "captions": captions}))
"""


def optimum_vision2seq(
    python: str,
    model_dir: Path,
    out: Path,
    pixels: Path,
    new_tokens: int,
    caption_tokens: int,
    repeat: int,
    threads: int,
) -> dict:
    """Optimum's ``ORTModelForVision2Seq`` on the captioner ``model_dir``, in its venv: encoder ms
    and decode tokens/s (a generation of ``new_tokens`` less the encoder, over ``new_tokens``:
    its first decoder step counted, as Optimum's generate runs it), and the greedy captions of the
    photos in ``pixels`` (an .npy of prepared pixel batches)."""
    import json

    line = _run_peer(
        python,
        _OPTIMUM_VISION2SEQ,
        [
            str(model_dir),
            str(out),
            str(pixels),
            str(new_tokens),
            str(caption_tokens),
            str(repeat),
            str(threads),
        ],
        "Optimum Vision2Seq export",
    )
    return {"tool": f"optimum {_version(python, 'optimum')} ORTModelForVision2Seq", **json.loads(line)}
