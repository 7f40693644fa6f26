"""Zero-shot use of an image-text artifact: embed texts and images with its two towers (on any
backend that reads it), score them as the model does, and keep label embeddings on disk so an app
embeds its labels once.

    zs = ZeroShot("out/clip", backend="ort")
    zs.classify(["cat.jpg"], ["a cat", "a dog"])   # [[("a cat", 0.97), ("a dog", 0.03)]]
    zs.rank("a cat", ["cat.jpg", "car.jpg"])        # [("cat.jpg", 0.31), ("car.jpg", 0.12)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.errors import InputError
from edgekit.models.dual import image_feeds, text_feeds

LABELS_FORMAT = "edgekit-label-embeddings-1"


class ZeroShot:
    def __init__(self, artifact: Path | str, backend: str = "auto", threads: int | None = None):
        from edgekit.artifacts import read_manifest
        from edgekit.calibration.images import ImagePreprocessor
        from edgekit.models.dual import DUAL_TASKS
        from edgekit.models.tokenizer import load_tokenizer
        from edgekit.runtimes.registry import load_session

        self.artifact = Path(artifact)
        manifest = read_manifest(self.artifact)
        export = manifest["export"]
        if export.get("task") not in DUAL_TASKS:
            raise InputError(
                f"'{artifact}' is not an image-text artifact (its task is {export.get('task')})",
                "export a CLIP-family model (CLIP, Chinese CLIP, SigLIP, a vision-text dual encoder)",
            )
        files = export["model_files"]
        self.text = load_session(self.artifact, backend, threads, model_file=files["text"])
        self.vision = load_session(self.artifact, backend, threads, model_file=files["vision"])
        self.tokenizer = load_tokenizer(self.artifact, needed_for="zero-shot labels")
        self.preprocess = ImagePreprocessor.from_model(self.artifact)
        self.text_inputs = tower_text_inputs(manifest)
        self.scoring, self.logit_scale, self.logit_bias = (
            export["scoring"],
            export["logit_scale"],
            export["logit_bias"],
        )
        self.max_length = int(export["max_length"])
        self.text_padding = export.get("text_padding", "longest")
        self.fingerprint = manifest["files"].get(files["text"], {}).get("sha256", "")

    def embed_texts(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        """(texts, dim) normalised text embeddings."""
        if not texts:
            raise InputError("no texts to embed", "pass at least one label or text")
        feeds = text_feeds(self.tokenizer, texts, self.text_inputs, self.max_length, self.text_padding, batch)
        return np.concatenate([self.text.run(feed, ["text_embeds"])["text_embeds"] for feed in feeds])

    def embed_images(self, images: Sequence[Any], batch: int = 8) -> np.ndarray:
        """(images, dim) normalised image embeddings; ``images`` are paths or PIL images. A file
        that pillow cannot read is named (a user asked for that image: it is not skipped)."""
        if not images:
            raise InputError("no images to embed", "pass at least one image")
        feeds = image_feeds(self.preprocess, [_open(image) for image in images], batch)
        return np.concatenate([self.vision.run(feed, ["image_embeds"])["image_embeds"] for feed in feeds])

    def scores(self, image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
        from edgekit.models.dual import zero_shot_scores

        return zero_shot_scores(image_embeds, text_embeds, self.logit_scale, self.logit_bias, self.scoring)

    def classify(
        self, images: Sequence[Any], labels: Sequence[str] | "LabelSet"
    ) -> list[list[tuple[str, float]]]:
        """For each image, the labels with their probabilities, best first."""
        labels = labels if isinstance(labels, LabelSet) else self.labels(labels)
        probs = self.scores(self.embed_images(images), labels.embeds)
        return [sorted(zip(labels.names, map(float, row)), key=lambda kv: -kv[1]) for row in probs]

    def rank(self, text: str, images: Sequence[Any]) -> list[tuple[str, float]]:
        """The images ordered by their cosine similarity to ``text``, best first."""
        sims = self.embed_images(images) @ self.embed_texts([text])[0]
        names = [str(i) if isinstance(i, (str, Path)) else f"image {n}" for n, i in enumerate(images)]
        return sorted(zip(names, map(float, sims)), key=lambda kv: -kv[1])

    def labels(self, names: Sequence[str]) -> "LabelSet":
        names = [n.strip() for n in names if n.strip()]
        return LabelSet(names, self.embed_texts(names), self.fingerprint)

    def load_labels(self, path: Path | str) -> "LabelSet":
        labels = LabelSet.load(path)
        if labels.fingerprint != self.fingerprint:
            raise InputError(
                f"the label embeddings in '{path}' were made with another text tower than '{self.artifact}'",
                "compute them again with --save-labels on this artifact",
            )
        return labels


def tower_text_inputs(manifest: dict) -> list[str]:
    """The text tower's input names, as exported."""
    return [i["name"] for i in manifest["export"]["towers"]["text"]["inputs"]]


class LabelSet:
    """Label texts and their embeddings, saved as a plain .npz (no pickle) with the text tower's sha256."""

    def __init__(self, names: list[str], embeds: np.ndarray, fingerprint: str):
        self.names, self.embeds, self.fingerprint = list(names), np.asarray(embeds, np.float32), fingerprint

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        np.savez(
            path,
            format=np.array(LABELS_FORMAT),
            names=np.array(self.names),
            embeds=self.embeds,
            fingerprint=np.array(self.fingerprint),
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: Path | str) -> "LabelSet":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != LABELS_FORMAT:
                    raise KeyError("format")
                return cls([str(n) for n in data["names"]], data["embeds"], str(data["fingerprint"]))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise InputError(
                f"'{path}' is not a label-embeddings file written by edgekit ({type(exc).__name__})",
                "write one with 'edgekit zero-shot ... --save-labels FILE'",
            ) from exc


def _open(image: Any) -> Any:
    """A PIL image from a path (or a PIL image as it is)."""
    from edgekit.calibration.images import open_image

    return image if not isinstance(image, (str, Path)) else open_image(Path(image).expanduser())
