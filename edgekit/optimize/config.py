"""What ``edgekit optimize`` is asked: one frozen dataclass, filled by the CLI, a YAML/JSON file, or Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, did_you_mean


@dataclass(frozen=True)
class Task:
    """What optimize does for one --task: the precisions it offers, the kind of model and data it
    works on, and whether students are distilled for it (else the teacher is only quantized)."""

    precisions: tuple[str, ...]
    kind: str
    """'encoder', 'decoder' (KV-cache, weight-only int8/int4), 'dual' (image-text), 'ctc' (speech),
    'vision' (image features), 'captioner' (an image encoder-decoder), 'transcriber' (a speech
    encoder-decoder: Whisper) or 'text2text' (a text encoder-decoder: T5, BART, Marian)."""
    eval_hint: str
    """What --eval-data has to be, for the message when it is missing."""
    calib_hint: str = "pass --calib texts.txt (or --data)"
    distils: bool = True
    text_data: bool = True
    """Whether --data can stand in for --calib (text models); speech and image models need --calib."""
    calibrated: bool = True
    """Whether its int8 (and a captioner's int4) is calibrated; weight-only int8/int4 is not."""


TASKS = {
    "sentence-embedding": Task(
        ("fp32", "int8"),
        "encoder",
        "labelled held-out texts: a .jsonl with 'text' and 'label', or a folder of class subfolders",
    ),
    "image-text": Task(
        ("fp32", "int8"), "dual", "held-out image-text pairs (a .jsonl of image/text[/label], or a folder)"
    ),
    "causal-lm": Task(("fp32", "int8", "int4"), "decoder", "held-out texts", calibrated=False),
    "speech-ctc": Task(
        ("fp32", "int8"),
        "ctc",
        "held-out speech: WAV files (one file or a folder)",
        calib_hint="pass --calib with a folder of WAV files",
        distils=False,
        text_data=False,
    ),
    "image-feature-extraction": Task(
        ("fp32", "int8"),
        "vision",
        "labelled held-out images: a folder of class subfolders of JPEG/PNG files",
        calib_hint="pass --calib with a folder of images",
        distils=False,
        text_data=False,
    ),
    "image-captioning": Task(
        ("fp32", "int8", "int4"),
        "captioner",
        "held-out photos: a folder of JPEG/PNG images",
        calib_hint="pass --calib with a folder of images",
        distils=False,
        text_data=False,
    ),
    "automatic-speech-recognition": Task(
        ("fp32", "int8", "int4"),
        "transcriber",
        "held-out speech: WAV files (one file or a folder)",
        distils=False,
        text_data=False,
        calibrated=False,
    ),
    "text2text-generation": Task(
        ("fp32", "int8", "int4"),
        "text2text",
        "held-out texts: a .txt file (one per line), a .jsonl with 'text', or a folder of .txt files",
        distils=False,
        calibrated=False,
    ),
}
"""Tasks whose every stage exists for optimize. For encoders, image-text and speech models int8 is
static (calibrated); for decoders int8 and int4 are weight-only; for captioners int8 and int4 are
a static INT8 vision encoder (calibrated on images) with a weight-only decoder; for speech and
text encoder-decoders both graphs are weight-only. CTC speech, vision encoders and
encoder-decoders are quantized only (no students yet)."""
BACKEND_TARGETS = {"ort": "ort", "openvino": "openvino"}
"""The export target whose artifact each backend runs."""
CAPTION_NEW_TOKENS = 16
"""Encoder-decoders: the greedy tokens of one timed output (EOS ignored)."""
SEQ2SEQ_OUTPUTS = {"captioner": "caption", "transcriber": "transcript", "text2text": "output"}
"""What each encoder-decoder kind writes: its bench quality keys are ``<what>_exact`` and ``<what>_token_f1``."""


def task_kind(task: str) -> str:
    return TASKS[task].kind if task in TASKS else ""


def is_decoder(task: str) -> bool:
    return task_kind(task) == "decoder"


def is_captioner(task: str) -> bool:
    """Image captioners: encoder-decoders timed per caption, scored on their captions."""
    return task_kind(task) == "captioner"


def is_seq2seq(task: str) -> bool:
    """Encoder-decoders (captioners, speech and text): timed per output, scored on their outputs."""
    return task_kind(task) in SEQ2SEQ_OUTPUTS


def is_dual(task: str) -> bool:
    """Image-text dual encoders: data and eval data are image-text pairs; two towers per artifact."""
    return task_kind(task) == "dual"


def is_vision(task: str) -> bool:
    """Vision encoders: eval data is a folder of labelled images; quality is probe accuracy on their features."""
    return task_kind(task) == "vision"


def is_ctc(task: str) -> bool:
    """CTC speech encoders: eval and calibration data are WAV files; quality is transcript agreement."""
    return task_kind(task) == "ctc"


@dataclass(frozen=True)
class Shape:
    """A student shape: layers kept, and optionally a narrower width (hidden size, heads, FFN)."""

    layers: int
    hidden: int | None = None
    heads: int | None = None
    ffn: int | None = None
    vision_layers: int | None = None
    """Image-text models: layers the vision tower keeps (None: all); ``layers`` is the text tower's."""

    @property
    def name(self) -> str:
        width = f"x{self.hidden}" if self.hidden else ""
        vision = f"V{self.vision_layers}" if self.vision_layers else ""
        return f"L{self.layers}{width}{vision}"


def parse_students(value: str | list | tuple | None) -> tuple[Shape, ...]:
    """``6,3,2`` (layer counts) or ``4x384,2x256`` (layers x hidden; heads and FFN scaled from the
    teacher's by ``fit_shapes``);
    ``none`` or empty: no student, only the teacher is quantized."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    shapes = []
    for item in (i.strip().lower() for i in items):
        if item in ("", "none"):
            continue
        try:
            text, _, vision = item.partition("v")  # image-text: 4v6 = text tower 4 layers, vision tower 6
            vision_layers = int(vision) if vision else None
            if "x" in text:
                layers, hidden = (int(v) for v in text.split("x"))
                shapes.append(Shape(layers, hidden, vision_layers=vision_layers))
            else:
                shapes.append(Shape(int(text), vision_layers=vision_layers))
        except ValueError:
            raise InputError(
                f"--students '{item}' is not a layer count, LAYERSxHIDDEN or TEXTvVISION",
                "pass e.g. --students 6,3,2, --students 4x384,2x256, or for image-text 4v6 (or none)",
            ) from None
    return tuple(shapes)


def student_grid(layers: tuple[Shape, ...], widths: tuple[int, ...]) -> tuple[Shape, ...]:
    """Every layer count of ``layers`` at every hidden size of ``widths`` (the teacher's width
    stays the plain layer count): ``--students 4,2 --widths 384,256``."""
    return tuple(Shape(shape.layers, hidden) for shape in layers for hidden in widths)


def fit_shapes(shapes: tuple[Shape, ...], teacher: dict) -> tuple[Shape, ...]:
    """Narrower shapes get the teacher's head size and FFN ratio: heads = hidden / head size, FFN =
    hidden x the teacher's FFN / hidden (a width the head size does not divide is refused)."""
    width, heads, ffn = (teacher.get(k) for k in ("hidden_size", "num_attention_heads", "intermediate_size"))
    fitted = []
    for shape in shapes:
        if shape.hidden is None or shape.heads is not None or not (width and heads):
            fitted.append(shape)
            continue
        head_dim = width // heads
        if shape.hidden % head_dim:
            raise InputError(
                f"student {shape.name}: hidden {shape.hidden} is not a multiple of the teacher's head size {head_dim}",
                f"give a width that {head_dim} divides",
            )
        fitted.append(
            Shape(shape.layers, shape.hidden, shape.hidden // head_dim, ffn and ffn * shape.hidden // width)
        )
    return tuple(fitted)


@dataclass(frozen=True)
class OptimizeConfig:
    model: Path
    """The teacher: a Hugging Face model folder."""
    out: Path
    data: Path | None = None
    """Text the students are distilled on (and INT8 calibrated on unless ``calib``)."""
    eval_data: Path | None = None
    """Held-out labelled texts (.jsonl with a 'label' field, or a folder of class subfolders):
    quality is 5-fold probe accuracy relative to the teacher's."""
    task: str = "sentence-embedding"
    students: tuple[Shape, ...] = ()
    backends: tuple[str, ...] = ("ort",)
    precisions: tuple[str, ...] = ("fp32", "int8")
    max_drop: float = 0.02
    """The largest relative quality drop against the teacher a 'best' cell may have (0.02 = 98% kept)."""
    calib: Path | None = None
    """INT8 calibration: texts (encoders), images (image-text: default the images of ``data``)."""
    calib_text: Path | None = None
    """Image-text INT8: texts for the text tower (default: the captions of ``data``)."""
    calib_size: int = 128
    int8_guard: bool = True
    """INT8 with the accuracy guard (export's --max-drop on the same --eval-data)."""
    max_steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 1e-4
    distill: dict | None = None
    """Any other DistillConfig options for every student (e.g. {'w_attn': 0})."""
    batch: int = 8
    """Bench: the batch size latency is timed and cells are compared at (decoders: 1)."""
    new_tokens: int = 64
    """Decoders: greedy tokens per timed generation (after a 32-token prompt)."""
    bench_seq_len: int = 128
    repeat: int = 30
    threads: int | None = None
    seed: int = 0
    encoding: str | None = None
    resume: bool = False
    overwrite: bool = False

    def check(self) -> "OptimizeConfig":
        if self.task not in TASKS:
            raise InputError(f"optimize does not take --task {self.task} yet", f"use {', '.join(TASKS)}")
        unknown = [b for b in self.backends if b not in BACKEND_TARGETS]
        if unknown or not self.backends:
            name = unknown[0] if unknown else ""
            raise InputError(f"optimize has no backend '{name}'", did_you_mean(name, tuple(BACKEND_TARGETS)))
        offered = TASKS[self.task].precisions
        bad = [p for p in self.precisions if p not in offered]
        if bad or not self.precisions:
            name = bad[0] if bad else ""
            raise InputError(
                f"optimize has no precision '{name}' for {self.task}", did_you_mean(name, offered)
            )
        for label, values in (("--backends", self.backends), ("--precisions", self.precisions)):
            if len(set(values)) != len(values):
                raise InputError(f"{label} lists a value twice: {list(values)}", "list each once")
        if len(set(self.students)) != len(self.students):
            raise InputError("--students lists a shape twice", "list each student shape once")
        if self.students and not TASKS[self.task].distils:
            raise InputError(
                f"optimize does not distil {self.task} students yet: it quantizes the teacher",
                "pass --students none",
            )
        if self.students and self.data is None:
            raise InputError(
                "students need --data to be distilled on", "pass --data texts.txt, or --students none"
            )
        if self.eval_data is None:
            raise InputError(
                "optimize compares every cell with the teacher on --eval-data",
                f"pass {TASKS[self.task].eval_hint}",
            )
        self._check_dual()
        if (
            TASKS[self.task].calibrated
            and ("int8" in self.precisions or (is_captioner(self.task) and "int4" in self.precisions))
            and self.calib is None
            and (self.data is None or not TASKS[self.task].text_data)
        ):
            what = {"ctc": "audio", "vision": "images", "captioner": "images"}.get(
                task_kind(self.task), "text"
            )
            raise InputError(f"INT8 needs calibration {what}", TASKS[self.task].calib_hint)
        if not 0 <= self.max_drop < 1:
            raise InputError(
                f"--max-drop must be in [0, 1), got {self.max_drop}", "pass e.g. --max-drop 0.02"
            )
        for name in ("max_steps", "batch_size", "seq_len", "batch", "bench_seq_len", "repeat", "calib_size"):
            if getattr(self, name) < 1:
                raise InputError(
                    f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}",
                    "pass a positive integer",
                )
        self._check_distill_options()
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other", "pass one of them")
        return self

    def _check_dual(self) -> None:
        """Image-text: students by depth only (text and vision towers), both calibration sets or neither."""
        dual = is_dual(self.task)
        if not dual and any(s.vision_layers for s in self.students):
            raise InputError("TEXTvVISION student shapes are for --task image-text", "pass layer counts")
        if dual and any(s.hidden for s in self.students):
            raise InputError(
                "image-text students are shrunk by depth, not width",
                "pass e.g. --students 4 (text tower) or 4v6 (text 4, vision 6)",
            )
        if dual and (self.calib is None) != (self.calib_text is None):
            raise InputError(
                "image-text INT8 calibrates each tower: give --calib (images) and --calib-text (texts) together",
                "or give neither, and the pairs of --data calibrate both",
            )
        if self.calib_text is not None and not dual:
            raise InputError("--calib-text is for --task image-text", "drop it")

    def _check_distill_options(self) -> None:
        """``distill``: other DistillConfig options, by name; what optimize sets itself is refused."""
        from dataclasses import fields

        from edgekit.compress.distill.config import DistillConfig

        free = [f.name for f in fields(DistillConfig) if f.name not in RESERVED]
        for name in self.distill or {}:
            if name in RESERVED:
                raise InputError(
                    f"distill option '{name}' is set by optimize itself",
                    "give it as an optimize option, or drop it",
                )
            if name not in free:
                raise InputError(f"unknown distill option '{name}'", did_you_mean(name, free))


RESERVED = (
    "teacher",
    "data",
    "out",
    "student",
    "resume",
    "overwrite",
    "task",
    "student_layers",
    "student_hidden",
    "student_heads",
    "student_ffn",
    "max_steps",
    "batch_size",
    "seq_len",
    "lr",
    "seed",
    "encoding",
)


def load_optimize_file(path: Path, overrides: dict[str, Any]) -> OptimizeConfig:
    """An OptimizeConfig from a YAML/JSON file; options given on the command line win."""
    from edgekit.config_file import read_config_file

    cfg = read_config_file(
        path,
        OptimizeConfig,
        overrides,
        paths=("model", "out", "data", "eval_data", "calib", "calib_text"),
        tuples=("backends", "precisions"),
        required=("model", "out"),
    )
    import dataclasses

    students = cfg.students
    if students is None or isinstance(students, (str, int)):
        students = parse_students(None if students is None else str(students))
    elif not all(isinstance(s, Shape) for s in students):
        students = parse_students(list(students))
    return dataclasses.replace(cfg, students=students)
