"""Image-text dual encoders (the CLIP family): a text tower and a vision tower that map captions
and images into one embedding space, compared by cosine similarity.

Each tower is exported as its own stateless graph: ``input_ids`` (+ ``attention_mask``,
``token_type_ids`` where the tokenizer gives them) -> ``text_embeds``, and ``pixel_values`` ->
``image_embeds``; both projected and L2-normalised, so a dot product is the cosine. How the
similarities become probabilities is the model's: CLIP and Chinese CLIP take a softmax of
``logit_scale * cosine`` over the candidate texts; SigLIP a sigmoid of ``logit_scale * cosine +
logit_bias`` per text. Both numbers go in the manifest.

Families: ``CLIPModel``, ``ChineseCLIPModel``, ``SiglipModel`` and ``VisionTextDualEncoderModel``
(any vision encoder joined to any text encoder: how Chinese CLIP and LiT models are built).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.models.encoder import given
from edgekit.models.source import load_weights
from edgekit.models.specs import by_model_type, lookup_spec

DUAL_TASKS = ("zero-shot-image-classification",)
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class DualSpec:
    family: str
    model_types: tuple[str, ...]
    scoring: str = "softmax"
    """``softmax`` over the candidate texts (CLIP), or ``sigmoid`` per text with a bias (SigLIP)."""
    text_padding: str = "longest"
    """How texts are padded: to the longest in the batch, or (SigLIP, trained so) to ``max_length``."""
    atol: float = 1e-4
    attn_implementation: str | None = "eager"


_SPECS: tuple[DualSpec, ...] = (
    DualSpec("clip", ("clip",)),
    DualSpec("chinese_clip", ("chinese_clip",)),
    DualSpec("siglip", ("siglip",), scoring="sigmoid", text_padding="max_length"),
    DualSpec("vision-text-dual-encoder", ("vision-text-dual-encoder",)),
)
_BY_TYPE = by_model_type(_SPECS)


def dual_model_types() -> list[str]:
    return sorted(_BY_TYPE)


def dual_spec_for(model_type: str | None) -> DualSpec:
    return lookup_spec(_BY_TYPE, model_type, "image-text export spec")


@dataclass
class BuiltTower:
    """One tower, shaped like the other stateless kinds' built modules (what export_graph and the
    INT8 path read): the module, its input and output names, and its tokenizer or image size."""

    name: str
    module: Any
    config: Any
    input_names: list[str]
    output_names: list[str]
    embed_dim: int
    tokenizer: Any = None
    max_length: int = 0
    image_size: tuple[int, int] = (0, 0)
    channels: int = 3
    pooling: Any = None
    eval_pairs: Any = None
    """(feeds, fp32 embeddings of the other modality, description) where image-text pairs judge INT8."""

    @property
    def quality_output(self) -> str:
        """The output the INT8 accuracy guard compares with fp32 (cosine of the embeddings)."""
        return self.output_names[0]


@dataclass
class BuiltDual:
    model: Any
    text: BuiltTower
    vision: BuiltTower
    logit_scale: float
    logit_bias: float | None

    @property
    def towers(self) -> tuple[BuiltTower, BuiltTower]:
        return self.text, self.vision


def _tower_classes():
    import torch

    class TextTower(torch.nn.Module):
        """``get_text_features`` projected and L2-normalised; inputs by keyword."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            kwargs = given(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            out = self.model.get_text_features(**kwargs)
            embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
            return (torch.nn.functional.normalize(embeds, p=2.0, dim=-1),)

    class VisionTower(torch.nn.Module):
        """``get_image_features`` projected and L2-normalised."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            out = self.model.get_image_features(pixel_values=pixel_values)
            embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
            return (torch.nn.functional.normalize(embeds, p=2.0, dim=-1),)

    return TextTower, VisionTower


def text_input_names(tokenizer: Any, model: Any) -> list[str]:
    accepted = set(inspect.signature(model.get_text_features).parameters)
    names = [n for n in tokenizer.model_input_names if n in TEXT_INPUTS and n in accepted]
    if "input_ids" not in names:
        raise InputError(
            f"the tokenizer's inputs {tokenizer.model_input_names} include no input_ids",
            "use the model's own text tokenizer",
        )
    return names


def _sizes(config: Any) -> tuple[Any, Any, int]:
    """(text config, vision config, embedding size) of any of the families."""
    text, vision = config.text_config, config.vision_config
    dim = getattr(config, "projection_dim", None) or getattr(text, "hidden_size")
    return text, vision, int(dim)


def build_dual(model_dir: Path, spec: DualSpec) -> BuiltDual:
    import torch
    from transformers import AutoModel

    from edgekit.models.tokenizer import load_tokenizer

    model_dir = Path(model_dir)
    load = lambda: AutoModel.from_pretrained(  # noqa: E731
        str(model_dir), attn_implementation=spec.attn_implementation, dtype=torch.float32
    )
    model = load_weights(load, model_dir).eval()
    tokenizer = load_tokenizer(model_dir, model.config.text_config)
    text_cfg, vision_cfg, dim = _sizes(model.config)
    text_cls, vision_cls = _tower_classes()
    max_length = int(getattr(text_cfg, "max_position_embeddings", 0) or 512)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < max_length:
        max_length = tok_max
    size = vision_cfg.image_size
    text = BuiltTower(
        "text",
        text_cls(model).eval(),
        text_cfg,
        text_input_names(tokenizer, model),
        ["text_embeds"],
        dim,
        tokenizer=tokenizer,
        max_length=max_length,
    )
    vision = BuiltTower(
        "vision",
        vision_cls(model).eval(),
        vision_cfg,
        ["pixel_values"],
        ["image_embeds"],
        dim,
        image_size=(size, size) if isinstance(size, int) else tuple(size),
        channels=int(getattr(vision_cfg, "num_channels", 3)),
    )
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    bias = float(model.logit_bias.detach()) if getattr(model, "logit_bias", None) is not None else None
    return BuiltDual(model, text, vision, scale, bias)


def text_feeds(
    tokenizer: Any,
    texts: list[str],
    input_names: list[str],
    max_length: int,
    padding: str = "longest",
    batch: int = 32,
) -> list[dict[str, Any]]:
    """Text-tower feeds in batches, tokenized as the model was trained: padded to the longest text
    of a batch, or to ``max_length`` where the family pads so (SigLIP)."""
    import numpy as np

    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(
            list(texts[i : i + batch]),
            padding="max_length" if padding == "max_length" else True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        out.append({n: np.ascontiguousarray(enc[n], dtype=np.int64) for n in input_names})
    return out


def image_feeds(preprocess: Any, images: list[Any], batch: int = 8) -> list[dict[str, Any]]:
    """Vision-tower feeds in batches: PIL images through the artifact's own preprocessor."""
    import numpy as np

    arrays = [preprocess(image) for image in images]
    return [
        {"pixel_values": np.stack(arrays[i : i + batch]).astype(np.float32)}
        for i in range(0, len(arrays), batch)
    ]


def zero_shot_scores(
    image_embeds: Any, text_embeds: Any, logit_scale: float, logit_bias: float | None, scoring: str
):
    """(images, texts) probabilities from normalised embeddings, as the model scores them."""
    import numpy as np

    logits = logit_scale * (np.asarray(image_embeds) @ np.asarray(text_embeds).T)
    if scoring == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(logits + (logit_bias or 0.0))))
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def attach_eval_pairs(
    built: "BuiltDual", references: dict[str, Any], pairs: Any, model_dir: Path, text_padding: str
) -> None:
    """Give each tower of ``built`` the pairs it is judged on: its own modality's feeds, and the
    fp32 embeddings of the other modality as the candidates (``compress/quality.py`` then measures
    a compressed tower by zero-shot top-1 agreement with fp32, the other tower held at fp32)."""
    import numpy as np

    from edgekit.calibration.images import ImagePreprocessor

    text, vision = built.text, built.vision
    feeds = {
        "text": text_feeds(text.tokenizer, pairs.texts, text.input_names, text.max_length, text_padding, 8),
        "vision": image_feeds(ImagePreprocessor.from_model(model_dir), pairs.images),
    }
    embeds = {
        tower.name: np.concatenate(
            [
                references[tower.name].run(f, [tower.quality_output])[tower.quality_output]
                for f in feeds[tower.name]
            ]
        )
        for tower in built.towers
    }
    source = f"{len(pairs)} image-text pairs"
    text.eval_pairs = (feeds["text"], embeds["vision"], source)
    vision.eval_pairs = (feeds["vision"], embeds["text"], source)


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = DUAL_TASKS
model_types = dual_model_types
spec_for = dual_spec_for


def claims(raw_config: dict) -> str | None:
    return TASKS[0] if raw_config.get("model_type") in dual_model_types() else None


def build(model_dir: Path, spec: DualSpec, task: str = TASKS[0]) -> BuiltDual:
    return build_dual(model_dir, spec)


def reference_io(built: BuiltTower | BuiltDual, model_file: str | None = None):
    """The reference of one tower (each is validated on its own); of a whole model, the tower whose
    graph is ``model_file`` (``text/...`` or ``vision/...``)."""
    from edgekit.models.kinds import ReferenceIO

    if isinstance(built, BuiltDual):
        built = built.vision if str(model_file or "").startswith("vision") else built.text
    return ReferenceIO(
        built.module, built.input_names, built.output_names, image_inputs=built.name == "vision"
    )
