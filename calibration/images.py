"""Images to model inputs with pillow, following the model's ``preprocessor_config.json``.

Handles the keys of the Hugging Face image processors for ViT, DeiT, CLIP and similar models:
``do_convert_rgb``, ``do_resize`` + ``size`` (``height``/``width`` or ``shortest_edge``),
``resample``, ``do_center_crop`` + ``crop_size``, ``do_rescale`` + ``rescale_factor``,
``do_normalize`` + ``image_mean``/``image_std``. Output: float32, channels first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

log = logging.getLogger("edgekit.calibration")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def _hw(value: Any, key: str) -> tuple[int, int] | int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
    raise InputError(
        f"preprocessor_config.json has an unsupported '{key}': {value}",
        "use {'height': H, 'width': W} or {'shortest_edge': N}",
    )


def has_image_processor(folder: Path) -> bool:
    """Whether ``folder`` says how to prepare images: a ``preprocessor_config.json``, or a
    ``processor_config.json`` that holds an ``image_processor`` section."""
    import json

    folder = Path(folder)
    if (folder / "preprocessor_config.json").is_file():
        return True
    joint = folder / "processor_config.json"
    try:
        return joint.is_file() and isinstance(json.loads(joint.read_text()).get("image_processor"), dict)
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class ImagePreprocessor:
    size: tuple[int, int] | int | None = (224, 224)
    crop: tuple[int, int] | None = None
    resample: int = 2  # PIL bilinear, the transformers default for ViT
    rescale: float | None = 1 / 255
    mean: tuple[float, ...] | None = (0.5, 0.5, 0.5)
    std: tuple[float, ...] | None = (0.5, 0.5, 0.5)
    convert_rgb: bool = True

    @classmethod
    def from_model(cls, model_dir: Path) -> "ImagePreprocessor":
        from edgekit.artifacts import read_json

        file = Path(model_dir) / "preprocessor_config.json"
        joint = Path(model_dir) / "processor_config.json"  # transformers 5 saves processors whole
        if file.is_file():
            cfg = read_json(file, "fix the file")
        elif has_image_processor(model_dir):
            cfg = read_json(joint, "fix the file")["image_processor"]
        else:
            raise InputError(
                f"'{model_dir}' has no preprocessor_config.json, so images cannot be prepared for it",
                "add the image processor's preprocessor_config.json to the model folder",
            )
        crop = _hw(cfg.get("crop_size"), "crop_size") if cfg.get("do_center_crop") else None
        if isinstance(crop, int):
            crop = (crop, crop)
        return cls(
            size=_hw(cfg.get("size"), "size") if cfg.get("do_resize", True) else None,
            crop=crop,
            resample=int(cfg.get("resample", 2)),
            rescale=float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else None,
            mean=tuple(cfg["image_mean"]) if cfg.get("do_normalize", True) and "image_mean" in cfg else None,
            std=tuple(cfg["image_std"]) if cfg.get("do_normalize", True) and "image_std" in cfg else None,
            convert_rgb=bool(cfg.get("do_convert_rgb", True)),
        )

    def describe(self) -> dict:
        return {
            "size": self.size,
            "crop": self.crop,
            "resample": self.resample,
            "rescale": self.rescale,
            "mean": self.mean,
            "std": self.std,
        }

    def __call__(self, image: Any) -> Any:
        import numpy as np

        if self.convert_rgb:
            image = image.convert("RGB")
        if isinstance(self.size, tuple):
            image = image.resize((self.size[1], self.size[0]), resample=self.resample)
        elif isinstance(self.size, int):  # shortest edge to `size`, keeping the aspect ratio
            w, h = image.size
            scale = self.size / min(w, h)
            image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample=self.resample)
        if self.crop is not None:
            w, h = image.size
            ch, cw = self.crop
            left, top = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
            image = image.crop((left, top, left + cw, top + ch))
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        if self.rescale is not None:
            array = array * np.float32(self.rescale)
        if self.mean is not None and self.std is not None:
            array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


_WARNED: set[str] = set()


def open_image(path: Path, where: str = "") -> Any:
    """The image at ``path`` as a PIL image; one line naming the file (after ``where``, a file and
    line that named it) for a missing file or one pillow cannot read."""
    from PIL import Image

    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise InputError(f"{prefix}image '{path}' does not exist", "fix the path to a JPEG or PNG file")
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    except Exception as exc:  # noqa: BLE001 - pillow raises many types for a damaged file
        raise InputError(
            f"{prefix}cannot read image '{path}' ({type(exc).__name__}: {exc})".splitlines()[0],
            "replace it with a JPEG or PNG file that opens in an image viewer",
        ) from exc


def image_files(path: Path | str) -> list[Path]:
    """The images in a folder (its subfolders too, in sorted order), or the one image file given."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path] if path.suffix.lower() in IMAGE_SUFFIXES else []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def check_image_folder(path: Path | str, option: str) -> list[Path]:
    """Every image of ``path`` opened once (a damaged one is named); none at all is refused."""
    files = image_files(path)
    if not files:
        raise InputError(
            f"{option} '{path}' holds no images but this model reads images",
            "pass a folder of JPEG/PNG images (class subfolders give labels)",
        )
    for file in files:
        open_image(file, option)
    return files


def load_images(
    files: list[Path], pre: ImagePreprocessor, limit: int | None = None
) -> tuple[list[Any], list[str]]:
    """Preprocessed arrays of the readable files (up to ``limit``) and the names of those skipped.

    An unreadable file is reported by name and skipped; no readable file at all is an error.
    """
    from PIL import Image

    arrays, skipped = [], []
    for file in files:
        if limit is not None and len(arrays) >= limit:
            break
        try:
            with Image.open(file) as opened:
                opened.load()
                image = opened.copy()
        except Exception as exc:  # noqa: BLE001 - pillow raises many types (SyntaxError, struct.error, zlib.error) on damaged files
            if str(file) not in _WARNED:  # calibration and evaluation may read the same folder
                _WARNED.add(str(file))
                log.warning("skipped unreadable image %s (%s)", file, type(exc).__name__)
            skipped.append(str(file))
            continue
        arrays.append(pre(image))
    if not arrays:
        raise InputError(
            f"no readable image among {len(files)} file(s) given for calibration",
            "give a folder with at least one JPEG or PNG image",
        )
    return arrays, skipped


def image_eval_feeds(
    model_dir: Path, folder: Path, batch: int = 8, limit: int = 256
) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Batches of preprocessed images from ``folder`` (class subfolders give labels)."""
    import numpy as np

    folder = Path(folder).expanduser()
    files = image_files(folder)[:limit]
    arrays, skipped = load_images(files, ImagePreprocessor.from_model(model_dir))
    kept = [f for f in files if str(f) not in skipped]
    labels = (
        [f.parent.relative_to(folder).parts[0] for f in kept]
        if all(f.parent != folder for f in kept)
        else None
    )
    feeds = [{"pixel_values": np.stack(arrays[i : i + batch])} for i in range(0, len(arrays), batch)]
    return feeds, labels
