"""Image captioners (``VisionEncoderDecoderModel``: ViT + GPT-2 as ViT-GPT2 captioners are built,
ViT + TrOCR's decoder with the encoder-to-decoder projection as TrOCR-base has), tiny random
models: two graphs validated against PyTorch, beam search with OFA's settings (5 beams, no
repeated 3-grams, a length limit) equal to transformers' ``generate`` on real photos, and
``edgekit generate --image``. No captioner weights install here; the photos are real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import PHOTOS, run_cli, save_photos
from .captioner_models import make_tiny_blip, make_tiny_captioner, make_tiny_florence2


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return save_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def captioners(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """decoder -> (model folder, ONNX artifact); TrOCR's encoder is wider than its decoder; BLIP
    is no encoder-decoder class (models/blip.py adapts it); Florence-2's encoder reads a task prompt too."""
    root = tmp_path_factory.mktemp("captioners")
    out = {}
    for decoder, width in (("gpt2", 32), ("trocr", 48), ("blip", 48), ("florence2", 32)):
        if decoder in ("blip", "florence2"):
            model = {"blip": make_tiny_blip, "florence2": make_tiny_florence2}[decoder](root / decoder)
        else:
            model = make_tiny_captioner(root / decoder, decoder, encoder_width=width, peaked=25.0)
        result = run_cli("export", "--model", str(model), "--out", str(root / f"{decoder}-onnx"))
        assert result.returncode == 0, result.stderr
        assert "greedy tokens identical to transformers on 3 inputs" in result.stdout
        out[decoder] = (model, root / f"{decoder}-onnx")
    return out


def _photo_cases(model: Path, photos: Path, export: dict, tokenizer) -> dict:
    """Every photo through the model's preprocessor (and, for Florence-2, the default task's prompt)."""
    from edgekit.calibration.images import ImagePreprocessor, open_image
    from edgekit.runtimes.seq2seq import image_encoder_feed

    pre = ImagePreprocessor.from_model(model)
    feeds = [
        image_encoder_feed(export, tokenizer, pre(open_image(photos / f"{n}.png"))[None]) for n in PHOTOS
    ]
    return {"prompts": feeds}


@pytest.mark.parametrize("decoder", ["gpt2", "trocr", "blip", "florence2"])
def test_captioner_exports_two_graphs_and_beams_like_transformers(captioners, photos, decoder):
    from edgekit.export.validate import seq2seq_greedy_parity
    from edgekit.models.seq2seq import build_seq2seq
    from edgekit.models.specs import seq2seq_spec_for
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.registry import load_session

    model, artifact = captioners[decoder]
    export = json.loads((artifact / "manifest.json").read_text())["export"]
    prompted = decoder == "florence2"
    assert export["graphs"]["encoder"]["inputs"] == ["pixel_values"] + (["input_ids"] if prompted else [])
    assert export["seq2seq"]["encoder_input"] == "pixel_values" and export["max_length"] == 64
    sessions = {p: load_session(artifact, "ort", model_file=f) for p, f in export["model_files"].items()}
    model_type = json.loads((model / "config.json").read_text())["model_type"]
    built = build_seq2seq(model, seq2seq_spec_for(model_type))
    cases = _photo_cases(model, photos, export, built.tokenizer)
    for extra in (
        {},
        dict(num_beams=5, no_repeat_ngram_size=3),  # OFA's captioning settings
        dict(num_beams=5, no_repeat_ngram_size=3, length_penalty=0.5),
    ):
        cfg = GenerationConfig(max_new_tokens=16, **extra)
        result = seq2seq_greedy_parity(built, sessions, cases, 16, strict=False, cfg=cfg)
        assert result["identical"], (extra, result)
    from edgekit.runtimes.seq2seq import Seq2SeqStepper, generate_seq2seq

    stepper = Seq2SeqStepper(sessions["encoder"], sessions["decoder"], built.io)
    beams = [
        generate_seq2seq(
            stepper, p, [built.start_token], GenerationConfig(max_new_tokens=16, num_beams=5), (102,)
        )
        for p in cases["prompts"]
    ]
    if decoder == "gpt2":  # the parity above covered beams that end at different lengths
        assert len({len(b) for b in beams}) > 1, beams


def test_generate_image_cli_and_bad_inputs(captioners, photos, tmp_path):
    _, artifact = captioners["gpt2"]
    photo = str(photos / "chelsea.png")
    greedy = run_cli("generate", str(artifact), "--image", photo, "--max-new-tokens", "8")
    torch_ = run_cli(
        "generate", str(artifact), "--image", photo, "--max-new-tokens", "8", "--backend", "torch"
    )
    assert greedy.returncode == 0, greedy.stderr
    assert greedy.stdout.strip() and greedy.stdout == torch_.stdout
    beams = run_cli(
        "generate", str(artifact), "--image", photo, "--num-beams", "5", "--no-repeat-ngram-size", "3",
        "--max-new-tokens", "12",
    )  # fmt: skip
    assert beams.returncode == 0, beams.stderr
    words = beams.stdout.split()
    assert len({tuple(words[i : i + 3]) for i in range(len(words) - 2)}) == max(0, len(words) - 2)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    for args, message in (
        (["--prompt", "a cat"], "is an image captioner: it reads an image"),
        (["--image", str(broken)], "cannot read image"),
        (["--image", photo, "--max-new-tokens", "100"], "exceeds the decoder's 64 positions"),
    ):
        result = run_cli("generate", str(artifact), *args)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("decoder", ["trocr", "blip", "florence2"])
def test_openvino_captioner_generates_like_onnx_runtime(captioners, photos, tmp_path, decoder):
    _, artifact = captioners[decoder]
    result = run_cli(
        "export", "--model", str(artifact), "--target", "openvino", "--out", str(tmp_path / "ov")
    )
    assert result.returncode == 0, result.stderr
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    cfg = GenerationConfig(num_beams=5, max_new_tokens=10)  # the CLI's --image path: test_generate_image_cli
    for name in PHOTOS[:3]:
        ov = generate_text(tmp_path / "ov", None, cfg, backend="openvino", image=photos / f"{name}.png")
        ort = generate_text(artifact, None, cfg, backend="ort", image=photos / f"{name}.png")
        assert ov.token_ids == ort.token_ids and ov.text == ort.text


def test_bench_times_the_captioner_encoder_and_decoding(captioners, tmp_path):
    _, artifact = captioners["gpt2"]
    out = tmp_path / "bench"
    args = [
        "--backend",
        "torch,ort",
        "--repeat",
        "2",
        "--new-tokens",
        "4",
        "--contexts",
        "4",
        "--out",
        str(out),
    ]
    result = run_cli("bench", str(artifact), *args)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert {r["backend"] for r in rows} == {"torch", "ort"}
    assert all(r["encoder_ms"] > 0 and r["tokens_per_s"] > 0 for r in rows)


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_captioner_int8_calibrates_its_vision_encoder_on_photos(captioners, photos, tmp_path, target):
    """--calib photos/ with int8: the encoder's activations are calibrated INT8 (Q/DQ on ORT,
    NNCF on OpenVINO), the decoder weight-only; greedy captions are compared with fp32."""
    model, artifact = captioners["gpt2"]
    out = tmp_path / f"{target}-int8"
    result = run_cli(
        "export", "--model", str(artifact), "--target", target, "--precision", "int8",
        "--calib", str(photos), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    quant = manifest["export"]["quantization"]
    assert quant["encoder"]["mode"] == "static"
    assert quant["encoder"]["calibration"]["kind"] == "image"
    assert quant["encoder"]["calibration"]["images_available"] == len(PHOTOS)
    assert "mode" not in quant["decoder"] or quant["decoder"]["mode"] != "static"
    if target == "ort":
        assert (
            quant["encoder"]["graph"]["MatMulIntegerToFloat"] > 0 and quant["encoder"]["quantized_nodes"] > 0
        )
    generation = manifest["validation"]["greedy_generation"]
    assert generation["inputs"] >= 1 and 0 <= generation["identical_inputs"] <= generation["inputs"]
    photo = str(photos / "chelsea.png")
    caption = run_cli("generate", str(out), "--image", photo, "--max-new-tokens", "8")
    assert caption.returncode == 0 and caption.stdout.strip(), caption.stderr


def test_captioner_calibration_is_checked_before_work(captioners, tmp_path):
    _, artifact = captioners["gpt2"]
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("a caption, not an image\n")
    for args, message in (
        (["--calib", str(tmp_path / "texts")], "holds no images"),
        (["--calib", str(tmp_path / "absent")], "does not exist"),
        (
            ["--calib", str(tmp_path / "texts"), "--precision", "fp32"],
            "--calib does not apply to --precision fp32",
        ),
    ):
        precision = [] if "--precision" in args else ["--precision", "int8"]
        result = run_cli(
            "export", "--model", str(artifact), "--target", "ort", *precision, *args,
            "--out", str(tmp_path / "out"),
        )  # fmt: skip
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_bench_scores_int8_captions_against_fp32_on_photos(captioners, photos, tmp_path):
    """--eval-data photos/: every variant captions each photo; the fp32 PyTorch worker's captions
    are the reference (its own agreement is 1 by construction, the INT8 one's is measured)."""
    from edgekit.benchmarks.caption_bench import token_f1

    model, artifact = captioners["gpt2"]
    int8 = tmp_path / "int8"
    done = run_cli(
        "export", "--model", str(artifact), "--target", "ort", "--precision", "int8",
        "--calib", str(photos), "--out", str(int8),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "bench"
    result = run_cli(
        "bench", str(artifact), str(int8), "--backend", "torch,ort", "--repeat", "2", "--new-tokens", "4",
        "--contexts", "4", "--eval-data", str(photos), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bench = json.loads((out / "bench.json").read_text())
    quality = {(q["artifact"], q["backend"]): q for q in bench["quality"]}
    assert set(quality) == {("gpt2-onnx", "torch"), ("gpt2-onnx", "ort"), ("int8", "ort")}
    assert all(q["images"] == len(PHOTOS) and len(q["captions"]) == len(PHOTOS) for q in quality.values())
    fp32_ort, q8 = quality[("gpt2-onnx", "ort")], quality[("int8", "ort")]
    assert fp32_ort["caption_exact"] == 1.0 and fp32_ort["caption_token_f1"] == 1.0
    assert fp32_ort["captions"] == quality[("gpt2-onnx", "torch")]["captions"]
    assert 0.0 <= q8["caption_exact"] <= q8["caption_token_f1"] <= 1.0
    assert "captions identical to fp32" in (out / "bench.md").read_text()
    assert token_f1([1, 2, 3], [1, 2, 3]) == 1.0 and token_f1([1, 2], [3]) == 0.0
    assert abs(token_f1([1, 2, 2], [2, 2, 4, 5]) - 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) < 1e-12
    refused = run_cli(
        "bench", str(artifact), "--backend", "ort", "--eval-data", str(tmp_path / "bench" / "bench.md"), "--repeat", "1",
        "--out", str(tmp_path / "b2"),
    )  # fmt: skip
    assert refused.returncode != 0 and "holds no images" in refused.stderr


def test_blip_continues_a_prompt_like_transformers_and_refuses_other_heads(captioners, photos, tmp_path):
    """BLIP's conditional captioning: ``--prompt`` tokens follow the [DEC] start token, as
    ``BlipForConditionalGeneration.generate`` puts them; the CLI prints the continuation. A BLIP
    checkpoint of another head (retrieval) is refused in one line."""
    import torch
    import transformers
    from PIL import Image

    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    model, artifact = captioners["blip"]
    assert json.loads((artifact / "manifest.json").read_text())["export"]["text_prompt"] is True
    blip = transformers.BlipForConditionalGeneration.from_pretrained(str(model)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model))
    processor = transformers.BlipImageProcessor.from_pretrained(str(model))
    for name in PHOTOS[:3]:
        photo = photos / f"{name}.png"
        pixels = processor(Image.open(photo).convert("RGB"), return_tensors="pt")["pixel_values"]
        ids = tokenizer(["a picture of"], return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            hf = blip.generate(pixel_values=pixels, input_ids=ids, max_new_tokens=8, do_sample=False)
        new = hf[0, ids.shape[1] - 1 :].tolist()  # [CLS] became [DEC] and [SEP] was dropped
        new = new[: new.index(102) + 1] if 102 in new else new
        expected = tokenizer.decode(new, skip_special_tokens=True).strip()
        if name == PHOTOS[0]:  # the CLI once, then the same path in this process
            got = run_cli(
                "generate",
                str(artifact),
                "--image",
                str(photo),
                "--prompt",
                "a picture of",
                "--max-new-tokens",
                "8",
            )
            assert got.returncode == 0 and got.stdout.strip() == expected, got.stderr
        text = generate_text(artifact, "a picture of", GenerationConfig(max_new_tokens=8), image=photo).text
        assert text.strip() == expected
    long_prompt = run_cli("generate", str(artifact), "--image", str(photo), "--prompt", "word " * 70)
    assert long_prompt.returncode != 0 and "use a shorter --prompt" in long_prompt.stderr  # 64 positions
    assert "Traceback" not in long_prompt.stderr
    retrieval = tmp_path / "blip-retrieval"
    retrieval.mkdir()
    for f in model.iterdir():
        (retrieval / f.name).write_bytes(f.read_bytes())
    config = json.loads((model / "config.json").read_text())
    (retrieval / "config.json").write_text(
        json.dumps({**config, "architectures": ["BlipForImageTextRetrieval"]})
    )
    for task in ([], ["--task", "seq2seq"]):
        refused = run_cli("export", "--model", str(retrieval), *task, "--out", str(tmp_path / "out"))
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        assert not (tmp_path / "out").exists()
    assert "BlipForConditionalGeneration" in refused.stderr, refused.stderr


def test_florence2_task_prompt_is_laid_out_as_its_processor_does(captioners, photos, tmp_path):
    """The encoder graph reads the image and ``<s> prompt </s>``; Florence-2's processor puts N
    image placeholders first and the model fills them with the image features. Both layouts must
    give the same encoder output, for a task alone, a task with input, and free text; different
    prompts give different outputs (so the check can fail); ``generate`` equals transformers."""
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.registry import load_session
    from edgekit.runtimes.seq2seq import image_encoder_feed
    from edgekit.runtimes.textgen import generate_text

    model, artifact = captioners["florence2"]
    export = json.loads((artifact / "manifest.json").read_text())["export"]
    assert export["encoder_prompt"]["tasks"]["<CAPTION>"] == "What does the image describe?"
    florence = transformers.Florence2ForConditionalGeneration.from_pretrained(str(model)).eval()
    processor = transformers.Florence2Processor.from_pretrained(str(model))
    encoder = load_session(artifact, "ort", model_file=export["model_files"]["encoder"])
    photo = photos / "chelsea.png"
    image = Image.open(photo).convert("RGB")
    states = {}
    for prompt in ("<CAPTION>", "<OD>", "<CAPTION_TO_PHRASE_GROUNDING> a cat on a bed", "what is here"):
        hf_in = processor(text=prompt, images=image, return_tensors="pt")
        with torch.inference_mode():
            hf = florence(
                input_ids=hf_in["input_ids"], pixel_values=hf_in["pixel_values"],
                decoder_input_ids=torch.tensor([[export["decoder_start_token_id"]]]),
            ).encoder_last_hidden_state.numpy()  # fmt: skip
        feed = image_encoder_feed(export, processor.tokenizer, hf_in["pixel_values"].numpy(), prompt)
        got = encoder.run(feed)["last_hidden_state"]
        assert got.shape == hf.shape and float(np.abs(got - hf).max()) < 1e-4, prompt
        states[prompt] = got
        if prompt in ("<CAPTION>", "<OD>"):
            with torch.inference_mode():
                tokens = florence.generate(
                    input_ids=hf_in["input_ids"],
                    pixel_values=hf_in["pixel_values"],
                    max_new_tokens=8,
                    do_sample=False,
                )
            expected = processor.tokenizer.decode(tokens[0, 1:], skip_special_tokens=True).strip()
            got = generate_text(artifact, prompt, GenerationConfig(max_new_tokens=8), image=photo).text
            assert got.strip() == expected
    assert float(np.abs(states["<CAPTION>"][:, -4:] - states["<OD>"][:, -4:]).max()) > 1e-3
    bad = run_cli("generate", str(artifact), "--image", str(photo), "--prompt", "<CAPTION> extra words")
    assert bad.returncode != 0 and "takes no text after it" in bad.stderr and "Traceback" not in bad.stderr
    int8 = run_cli(
        "export", "--model", str(artifact), "--target", "ort", "--precision", "int8", "--calib", str(photos),
        "--out", str(tmp_path / "int8"),
    )  # fmt: skip
    assert int8.returncode == 0, int8.stderr
    quant = json.loads((tmp_path / "int8" / "manifest.json").read_text())["export"]["quantization"]
    assert quant["encoder"]["mode"] == "static" and quant["encoder"]["quantized_nodes"] > 0


def test_florence2_trt_fp16_profiles_take_the_task_prompt(captioners, photos, tmp_path):
    """--target trt fp16 of a task-prompted captioner: the encoder's profile ranges the prompt's
    length beside fixed-size pixels; the decoder's cross-attention length covers patches + prompt."""
    _, artifact = captioners["florence2"]
    out = tmp_path / "trt"
    result = run_cli(
        "export", "--model", str(artifact), "--target", "trt", "--precision", "fp16", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    export = json.loads((out / "manifest.json").read_text())["export"]
    encoder = export["tensorrt_graphs"]["encoder"]["profiles"][0]["shapes"]
    assert encoder["pixel_values"]["min"][1:] == encoder["pixel_values"]["max"][1:] == [3, 32, 32]
    assert encoder["input_ids"]["min"] == [1, 1] and encoder["input_ids"]["max"][1] == 128
    cross = export["tensorrt_graphs"]["decoder"]["profiles"][0]["shapes"]["past_key_values.0.encoder.key"]
    assert cross["max"][2] >= 17 + 128  # image features + the longest prompt
    caption = run_cli(
        "generate",
        str(out),
        "--image",
        str(photos / "chelsea.png"),
        "--prompt",
        "<OD>",
        "--max-new-tokens",
        "6",
    )
    assert caption.returncode == 0 and caption.stdout.strip(), caption.stderr
