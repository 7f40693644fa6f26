"""``edgekit generate``: text (or a WAV file) in, text out, over any artifact that generates.

A causal decoder continues the prompt; an encoder-decoder (text families) reads it with its
encoder and writes a new text; a speech encoder-decoder (Whisper) reads the audio and writes its
transcript. Each shape is one *opener* below: it checks the inputs, opens the sessions and returns
how to run; the token stream, stop strings and the result are shared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.errors import InputError
from edgekit.models.cache_io import DecoderIO
from edgekit.runtimes.generate import GenerationConfig, decode, generate_ids

Runner = Callable[[Callable[[int], bool]], list[int]]


@dataclass
class TextResult:
    prompt_tokens: int
    token_ids: list[int]
    text: str
    stopped_by: str
    """``eos``, ``stop_string``, ``max_new_tokens`` (``end_of_audio``: a CTC transcript)."""
    language: str | None = None
    """Speech models: the language transcribed (given, or detected from the audio)."""


@dataclass(frozen=True)
class Request:
    """What ``generate_text`` was asked, handed to the opener of the artifact's shape."""

    artifact: Path
    manifest: dict
    tokenizer: Any
    prompt: str | None
    cfg: GenerationConfig
    backend: str
    chat: bool
    threads: int | None
    audio: Any
    language: str | None
    translate: bool
    image: Any = None

    @property
    def export(self) -> dict:
        return self.manifest.get("export", {})

    @property
    def eos(self) -> tuple[int, ...]:
        return tuple(self.export.get("eos_token_ids") or ())


def generate_text(
    artifact,
    prompt: str | None,
    cfg: GenerationConfig = GenerationConfig(),
    backend: str = "auto",
    chat: bool = False,
    threads: int | None = None,
    on_text: Callable[[str], None] | None = None,
    audio=None,
    language: str | None = None,
    translate: bool = False,
    image=None,
) -> TextResult:
    """Tokenise ``prompt`` (through the chat template with ``chat``), generate, and stream text pieces to ``on_text``.

    Speech models read the WAV file ``audio`` instead (``language``: given, or detected;
    ``translate``: into English)."""
    from edgekit.artifacts import read_manifest
    from edgekit.models.tokenizer import load_tokenizer

    cfg.check()
    check_prompt(prompt)
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    tokenizer = load_tokenizer(artifact, needed_for="generate")
    req = Request(
        artifact, manifest, tokenizer, prompt, cfg, backend, chat, threads, audio, language, translate, image
    )
    if chat and not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"the tokenizer in '{artifact}' has no chat template",
            "drop --chat and write the prompt in the model's own format",
        )
    export = req.export
    from edgekit.runtimes.ctc import is_ctc

    if is_ctc(manifest):
        return _transcribe_ctc(req, on_text)
    encoder_input = (
        export.get("seq2seq", {}).get("encoder_input") if export.get("task") == "seq2seq" else None
    )
    if encoder_input == "pixel_values" or image is not None:
        _check_image_request(req, encoder_input)
        return _stream(req, _open_captioner, on_text)
    speech = encoder_input == "input_features"
    if speech and (audio is None or prompt or chat):
        raise InputError(
            f"'{artifact}' is a speech model: it reads audio, not a text prompt",
            "pass a WAV file with --audio (and no --prompt)",
        )
    if not speech and (audio is not None or prompt is None):
        raise InputError(
            f"'{artifact}' reads a text prompt" + (", not audio" if audio is not None else ""),
            "pass the text with --prompt",
        )
    if not speech and (language or translate):
        raise InputError("--language and --translate apply to speech models only", "drop them")
    return _stream(req, _open_speech if speech else _OPENERS.get(export.get("task"), _open_decoder), on_text)


def _stream(req: Request, opener, on_text: Callable[[str], None] | None) -> TextResult:
    prompt_len, run, cfg, language_used = opener(req)
    stream = _TextStream(req.tokenizer, cfg.stop_strings, on_text)
    ids = run(stream.on_token)
    return stream.result(prompt_len, ids, req.eos, language_used)


def _check_image_request(req: Request, encoder_input: str | None) -> None:
    """A captioner reads an image and no prompt; an image for any other model says what that model reads."""
    if encoder_input != "pixel_values":
        reads = {"input_features": "audio (--audio)"}.get(encoder_input or "", "a text prompt (--prompt)")
        raise InputError(f"'{req.artifact}' reads {reads}, not an image", "drop --image")
    prompted = bool(req.export.get("text_prompt") or req.export.get("encoder_prompt"))
    if req.image is None or (req.prompt is not None and not prompted) or req.chat or req.audio is not None:
        if prompted:
            raise InputError(
                f"'{req.artifact}' is an image captioner: it reads an image (and a --prompt), not audio or a chat",
                "pass the picture with --image",
            )
        raise InputError(
            f"'{req.artifact}' is an image captioner: it reads an image, not a text prompt or audio",
            "pass the picture with --image (and no --prompt)",
        )
    if req.language or req.translate:
        raise InputError("--language and --translate apply to speech models only", "drop them")


def _seq2seq_runner(
    req: Request, encoder_inputs: dict[str, np.ndarray], prompt: list[int] | None = None
) -> Runner:
    """Generation from the decoder's start token (and ``prompt`` after it) after one encoder pass
    (the new tokens checked against the decoder's positions first)."""
    from edgekit.runtimes.seq2seq import generate_seq2seq, open_seq2seq

    export, cfg, prompt = req.export, req.cfg, prompt or []
    room = int(export.get("max_length") or 1 << 30) - 1 - len(prompt)
    if cfg.max_new_tokens > room:
        raise InputError(
            f"--max-new-tokens {cfg.max_new_tokens} exceeds the decoder's {export['max_length']} positions"
            + (f" after the {len(prompt)}-token prompt" if prompt else ""),
            f"use --max-new-tokens {room} or less" if room > 0 else "use a shorter --prompt",
        )
    stepper, _ = open_seq2seq(req.artifact, req.backend, req.threads)
    start = [int(export["decoder_start_token_id"]), *prompt]

    def run(on_token):
        return generate_seq2seq(stepper, encoder_inputs, start, cfg, eos_token_ids=req.eos, on_token=on_token)

    return run


def _open_captioner(req: Request) -> tuple[int, Runner, GenerationConfig, str | None]:
    """An image captioner: the picture through the artifact's own preprocessor into the encoder
    once, then the decoder from its start token (greedy, sampling or beam search)."""
    from edgekit.calibration.images import ImagePreprocessor, open_image

    pixels = ImagePreprocessor.from_model(req.artifact)(open_image(Path(req.image).expanduser()))
    from edgekit.runtimes.seq2seq import image_encoder_feed

    if req.export.get("encoder_prompt"):  # the task prompt goes to the encoder (Florence-2)
        encoder_inputs = image_encoder_feed(req.export, req.tokenizer, pixels[None], req.prompt)
        return 0, _seq2seq_runner(req, encoder_inputs), req.cfg, None
    encoder_inputs = image_encoder_feed(req.export, req.tokenizer, pixels[None])
    # a prompt the caption continues (BLIP's conditional captioning): its tokens after the start
    # token, without the tokenizer's own [CLS]/[SEP] (BLIP's generate drops them the same way)
    prompt = req.tokenizer(req.prompt, add_special_tokens=False)["input_ids"] if req.prompt else []
    return len(prompt), _seq2seq_runner(req, encoder_inputs, prompt), req.cfg, None


def _transcribe_ctc(req: Request, on_text: Callable[[str], None] | None) -> TextResult:
    """A CTC speech model: the greedy transcript of ``--audio`` (there are no tokens to sample or search)."""
    from edgekit.runtimes.ctc import CtcTranscriber

    if req.image is not None:
        raise InputError(
            f"'{req.artifact}' is a CTC speech model: it reads audio, not an image", "pass --audio instead"
        )
    if req.audio is None or req.prompt is not None or req.chat:
        raise InputError(
            f"'{req.artifact}' is a CTC speech model: it reads audio, not a text prompt",
            "pass a WAV file with --audio (and no --prompt)",
        )
    cfg = req.cfg
    if req.language or req.translate or cfg.do_sample or cfg.num_beams > 1 or cfg.stop_strings:
        raise InputError(
            "a CTC speech model transcribes in its one language by the best letter per frame; "
            "--language, --translate, --do-sample, --num-beams and --stop do not apply",
            "drop them",
        )
    result = CtcTranscriber(req.artifact, req.backend, req.threads).transcribe_file(req.audio)
    if on_text is not None and result.text:
        on_text(result.text)
    return TextResult(0, result.token_ids, result.text, "end_of_audio")


def check_prompt(prompt: str | None) -> None:
    """A prompt is text: bytes that are not UTF-8 (a shell passes them through as surrogates) are refused."""
    if prompt is None:
        return
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = prompt[: exc.start + 1].encode("utf-8", "surrogateescape")
        raise InputError(
            f"the prompt is not UTF-8 text: byte 0x{raw[-1]:02x} at position {len(raw) - 1}",
            "pass the prompt in UTF-8 (check the terminal's or the file's encoding)",
        ) from exc


class _TextStream:
    """Decodes the tokens as they come, cuts at a stop string, and hands new text to ``on_text``."""

    def __init__(self, tokenizer, stop_strings: tuple[str, ...], on_text: Callable[[str], None] | None):
        self.tokenizer, self.stop_strings, self.on_text = tokenizer, stop_strings, on_text
        self.generated: list[int] = []
        self.printed = ""
        self.stopped_by = "max_new_tokens"

    def on_token(self, token: int) -> bool:
        self.generated.append(token)
        text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        for stop in self.stop_strings:
            if stop and stop in text:
                text = text[: text.index(stop)]
                self.stopped_by = "stop_string"
        if self.on_text is not None and not text.endswith("\ufffd") and text.startswith(self.printed):
            piece = text[len(self.printed) :]
            if piece:
                self.on_text(piece)
                self.printed = text
        return self.stopped_by == "stop_string"

    def result(
        self, prompt_len: int, ids: list[int], eos: tuple[int, ...], language: str | None
    ) -> TextResult:
        if ids and ids[-1] in eos:
            self.stopped_by = "eos"
        text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        if self.stopped_by == "stop_string":
            text = text[: min(text.index(s) for s in self.stop_strings if s and s in text)]
        if self.on_text is not None and text.startswith(self.printed) and len(text) > len(self.printed):
            self.on_text(text[len(self.printed) :])
        return TextResult(prompt_len, ids, text, self.stopped_by, language)


def _open_speech(req: Request) -> tuple[int, Runner, GenerationConfig, str | None]:
    from edgekit.audio import read_wav, sampling_rate
    from edgekit.runtimes.seq2seq import open_seq2seq
    from edgekit.runtimes.speech import SpeechPrompt, audio_features

    artifact, export, cfg = req.artifact, req.export, req.cfg
    encoder_inputs = audio_features(artifact, read_wav(req.audio, sampling_rate(artifact)))
    prompter = SpeechPrompt.from_artifact(artifact, int(export["decoder_start_token_id"]))
    if req.language and not prompter.languages:
        raise InputError(f"'{artifact}' is not multilingual, so --language does not apply", "drop --language")
    stepper, _ = open_seq2seq(artifact, req.backend, req.threads)
    stepper.encode(encoder_inputs)
    language_used, language_id = None, None
    if prompter.languages:
        if req.language:
            language_used, language_id = req.language, prompter.language_token(req.language)
        else:
            language_used, language_id = prompter.detect(stepper.start([prompter.start])[0])
    prompt_ids = prompter.tokens(language_id, req.translate)
    cfg = dataclasses.replace(
        cfg,
        suppress_tokens=cfg.suppress_tokens or prompter.suppress_tokens,
        begin_suppress_tokens=cfg.begin_suppress_tokens or prompter.begin_suppress_tokens,
    )
    prompt_len = len(prompt_ids)
    if prompt_len + cfg.max_new_tokens > int(export.get("max_length") or 1 << 30):
        raise InputError(
            f"--max-new-tokens {cfg.max_new_tokens} exceeds the decoder's {export['max_length']} positions after a {prompt_len}-token prompt",
            f"use --max-new-tokens {int(export['max_length']) - prompt_len} or less",
        )

    def run(on_token):
        return decode(stepper, prompt_ids, cfg, eos_token_ids=req.eos, on_token=on_token)

    return prompt_len, run, cfg, language_used


def _open_seq2seq(req: Request) -> tuple[int, Runner, GenerationConfig, str | None]:

    export, cfg = req.export, req.cfg
    encoded = req.tokenizer([req.prompt], return_tensors="np").items()
    encoder_inputs = {
        k: np.asarray(v, dtype=np.int64) for k, v in encoded if k in ("input_ids", "attention_mask")
    }
    prompt_len = int(encoder_inputs["input_ids"].shape[1])
    limit = export.get("max_source_length")
    if limit and prompt_len > limit:
        raise InputError(
            f"the input is {prompt_len} tokens; the encoder reads at most {limit}", "shorten the input"
        )
    run = _seq2seq_runner(req, encoder_inputs)

    return prompt_len, run, cfg, None


def _open_decoder(req: Request) -> tuple[int, Runner, GenerationConfig, str | None]:
    from edgekit.runtimes.registry import load_session

    io = DecoderIO.from_manifest(req.manifest)
    if req.chat:
        messages = [{"role": "user", "content": req.prompt}]
        prompt_ids = req.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
            prompt_ids = prompt_ids["input_ids"]
    else:
        prompt_ids = req.tokenizer(req.prompt)["input_ids"]
    prompt_ids = [int(t) for t in prompt_ids]
    session = load_session(req.artifact, req.backend, threads=req.threads)
    max_length = req.export.get("max_length")
    if session.max_positions:  # an ExecuTorch program's cache is its own length
        max_length = min(int(max_length or session.max_positions), session.max_positions)

    def run(on_token):
        return generate_ids(
            session, io, prompt_ids, req.cfg, eos_token_ids=req.eos, on_token=on_token, max_length=max_length
        )

    return len(prompt_ids), run, req.cfg, None


_OPENERS: dict[str, Callable[[Request], tuple[int, Runner, GenerationConfig, str | None]]] = {
    "seq2seq": _open_seq2seq,
    "text-generation": _open_decoder,
}
