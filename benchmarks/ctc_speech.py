"""Benchmark: a wav2vec2-base CTC speech encoder on ONNX Runtime and OpenVINO, fp32 and INT8,
against PyTorch fp32 on real speech, in one run.

    python -m edgekit.benchmarks.ctc_speech [--repeat 12] [--layers 12] [--out DIR]

No wav2vec2 weights install offline here (ASSETS.md), so the model is wav2vec2-base's shape
(``Wav2Vec2Config()``: a 7-layer conv feature encoder with strides 5,2,2,2,2,2,2 (320 samples, 20 ms
a frame), 12 transformer layers of 768, 95M parameters) with seeded random weights, a CTC head
over the 32-symbol letter vocabulary of the wav2vec2-base-960h fine-tunes, and group norm (no
attention mask), as that model has. The speech is real: three sentences spoken by eSpeak NG
(2.9 to 5.3 s); INT8 is calibrated on four other sentences, each at two speaking rates. Speed does not depend on
the weights; the transcripts do, so the character error rate of INT8 against fp32 here says how
far quantization moves a random model's per-frame argmax, not how a trained model reads.

Rows (``edgekit bench``): each utterance on torch, ORT fp32, ORT INT8 (static, calibrated on WAV
files), ORT dynamic INT8, OpenVINO fp32 and INT8; the real-time factor (time over audio length).

With ``--optimum-python``, Optimum's ``ORTModelForCTC`` (fp32, and ORTQuantizer's dynamic INT8)
is timed in the same run; it lives in a venv of its own (it needs transformers < 4.58).

Target: INT8 >= 2.5x PyTorch fp32 (total audio over total time), CER against fp32 <= 1% on a
trained model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGET = 2.5
CALIBRATION = (
    "She sells sea shells by the sea shore.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Numbers like seven, forty two and one hundred are read out in words.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
)


def make_wav2vec2(folder: Path, layers: int) -> Path:
    """wav2vec2-base's shape with a CTC head over the letter vocabulary, seeded random weights."""
    import torch
    import transformers

    folder.mkdir(parents=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate("ETAOINSHRDLUMWYFCGPBVKXJQZ'")})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json")).save_pretrained(str(folder))
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(str(folder))
    config = transformers.Wav2Vec2Config(vocab_size=len(vocab), num_hidden_layers=layers, pad_token_id=0)
    config.architectures = ["Wav2Vec2ForCTC"]
    torch.manual_seed(0)
    transformers.Wav2Vec2ForCTC(config).eval().save_pretrained(str(folder))
    return folder


def write_speech(folder: Path) -> Path:
    from edgekit.audio import speak, write_wav

    folder.mkdir(parents=True)
    for i, sentence in enumerate(CALIBRATION):
        for words_per_minute in (140, 180):
            samples, rate = speak(sentence, words_per_minute=words_per_minute)
            write_wav(folder / f"calib{i}-{words_per_minute}.wav", samples, rate)
    return folder


def _mean_cer(rows: list[dict]) -> dict[str, float]:
    """Per artifact/backend: the mean over utterances of the CER against fp32's transcript."""
    cers: dict[str, list[float]] = {}
    for r in rows:
        if "cer_vs_fp32" in r:
            cers.setdefault(f"{r['artifact']}/{r['backend']}", []).append(r["cer_vs_fp32"])
    return {k: round(sum(v) / len(v), 4) for k, v in cers.items()}


def main(argv: list[str] | None = None) -> dict:
    from edgekit.benchmarks.ctc_bench import summary
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.measures import VARIANTS, export_variants
    from edgekit.benchmarks.report import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=12)
    ap.add_argument("--layers", type=int, default=12, help="transformer layers (12: wav2vec2-base's)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--optimum-python",
        default=None,
        help="python of a venv with optimum[onnxruntime]: times ORTModelForCTC too",
    )
    args = ap.parse_args(argv)
    peer_failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_wav2vec2(root / "w2v", args.layers)
        variants = (*VARIANTS[:1], ("ort-int8-dynamic", "ort", "int8-dynamic"), *VARIANTS[1:])
        artifacts = export_variants(model, root, {"calib": write_speech(root / "calib")}, variants)
        if args.optimum_python:
            from edgekit.artifacts import read_manifest
            from edgekit.benchmarks.peers import optimum_ctc

            ctc = read_manifest(artifacts[0])["export"]["ctc"]
            for mode in ("fp32", "dynamic-int8"):
                try:
                    artifacts.append(
                        optimum_ctc(args.optimum_python, model, root / f"optimum-{mode}", ctc, mode)
                    )
                except SystemExit as exc:  # the peer's own failure is a result, reported beside the table
                    peer_failures[f"optimum {mode}"] = str(exc).strip().splitlines()[-1]
        cfg = BenchConfig(
            artifacts=tuple(artifacts), backends=("torch", "ort", "openvino"), repeat=args.repeat,
            warmup=2, out=args.out, overwrite=True,
        )  # fmt: skip
        result = bench(cfg)
    print_table(result)
    totals = summary(result["rows"])
    torch_rtf = next(t["rtf"] for t in totals if t["backend"] == "torch")
    report = {
        "cpu": cpu_info(),
        "speedup_vs_torch": {
            f"{t['artifact']}/{t['backend']}": round(torch_rtf / t["rtf"], 2)
            for t in totals
            if t["backend"] != "torch"
        },
        "rtf": {f"{t['artifact']}/{t['backend']}": round(t["rtf"], 4) for t in totals},
        "cer_vs_fp32": _mean_cer(result["rows"]),
    }
    report["peer_failures"] = peer_failures
    int8 = {k: v for k, v in report["speedup_vs_torch"].items() if "int8" in k and "optimum" not in k}
    report["int8_target"] = {"speedup": TARGET, "met": all(v >= TARGET for v in int8.values())}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
