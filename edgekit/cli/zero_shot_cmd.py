"""``edgekit zero-shot``: label images with an image-text artifact, or rank images for a text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.cli._common import Overwrite, Verbose, handled

_H = {
    "artifact": "A folder written by 'edgekit export' from a CLIP-family model.",
    "image": "An image to label (repeatable).",
    "images": "A folder of images (searched recursively).",
    "labels": "Candidate labels, comma-separated (e.g. 'a cat,a dog,a car').",
    "labels_file": "Candidate labels, one per line (UTF-8).",
    "label_embeddings": "Label embeddings saved before with --save-labels (.npz); no text is embedded.",
    "save_labels": "Save the labels' embeddings to this .npz file (what an app ships instead of the text tower).",
    "rank": "Rank the images by similarity to this text instead of labelling them.",
    "top": "Labels shown per image.",
    "backend": "Runtime backend (auto: the one the artifact was made for).",
    "threads": "Intra-op threads (default: all cores).",
}


@handled
def zero_shot(
    artifact: Annotated[Path, typer.Argument(help=_H["artifact"])],
    image: Annotated[Optional[list[Path]], typer.Option("--image", help=_H["image"])] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help=_H["images"])] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help=_H["labels"])] = None,
    labels_file: Annotated[Optional[Path], typer.Option("--labels-file", help=_H["labels_file"])] = None,
    label_embeddings: Annotated[
        Optional[Path], typer.Option("--label-embeddings", help=_H["label_embeddings"])
    ] = None,
    save_labels: Annotated[Optional[Path], typer.Option("--save-labels", help=_H["save_labels"])] = None,
    rank: Annotated[Optional[str], typer.Option("--rank", help=_H["rank"])] = None,
    top: Annotated[int, typer.Option("--top", help=_H["top"])] = 5,
    backend: Annotated[str, typer.Option("--backend", "-b", help=_H["backend"])] = "auto",
    threads: Annotated[Optional[int], typer.Option(help=_H["threads"])] = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Label images zero-shot with an image-text model (probabilities per label), or rank images for a text."""
    from edgekit.errors import InputError
    from edgekit.runtimes.dual import ZeroShot

    files = _image_files(image, images)
    names = _label_names(labels, labels_file)
    given = sum(x is not None for x in (names, label_embeddings, rank))
    if given != 1:
        raise InputError(
            "say what to compare the images with",
            "pass one of --labels / --labels-file, --label-embeddings, or --rank TEXT",
        )
    if not files and save_labels is None:
        raise InputError("no image given", "pass --image FILE (repeatable) or --images FOLDER")
    if save_labels is not None:
        _check_labels_out(save_labels, overwrite, names)
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}", "pass e.g. --top 5")
    zs = ZeroShot(artifact, backend, threads)
    if rank is not None:
        for name, score in zs.rank(rank, files):
            print(f"{score:.4f}  {name}")
        return
    label_set = zs.load_labels(label_embeddings) if label_embeddings else zs.labels(names)
    if save_labels is not None:
        written = _save_labels(label_set, save_labels)
        print(f"wrote {written} ({len(label_set.names)} labels)")
    for file, row in zip(files, zs.classify(files, label_set) if files else []):
        shown = ", ".join(f"{label} {p:.3f}" for label, p in row[:top])
        print(f"{file}: {shown}")


def _image_files(image: Optional[list[Path]], folder: Optional[Path]) -> list[Path]:
    from edgekit.calibration.images import IMAGE_SUFFIXES
    from edgekit.errors import InputError

    files = list(image or [])
    if folder is not None:
        if not folder.is_dir():
            raise InputError(f"--images '{folder}' is not a folder", "pass a folder of JPEG/PNG images")
        found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"--images '{folder}' holds no images", "put JPEG or PNG files in it")
        files.extend(found)
    return files


def _label_names(labels: Optional[str], labels_file: Optional[Path]) -> Optional[list[str]]:
    from edgekit.calibration.text import load_texts
    from edgekit.errors import InputError

    if labels is not None and labels_file is not None:
        raise InputError("both --labels and --labels-file given", "pass one of them")
    if labels_file is not None:
        return load_texts(labels_file)
    if labels is None:
        return None
    names = [n.strip() for n in labels.split(",") if n.strip()]
    if not names:
        raise InputError("--labels is empty", "pass e.g. --labels 'a cat,a dog'")
    return names


def _check_labels_out(path: Path, overwrite: bool, names: Optional[list[str]]) -> None:
    from edgekit.errors import InputError
    from edgekit.runtimes.dual import LabelSet

    if names is None:
        raise InputError("--save-labels saves embeddings of --labels or --labels-file", "add one of them")
    if path.suffix != ".npz":
        raise InputError(f"--save-labels '{path}' must end in .npz", "pass e.g. --save-labels labels.npz")
    if path.exists():
        if not overwrite:
            raise InputError(f"'{path}' already exists", "choose another file, or pass --overwrite")
        LabelSet.load(path)  # --overwrite replaces only a file edgekit wrote


def _save_labels(label_set, path: Path) -> Path:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        label_set.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
