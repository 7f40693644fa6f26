"""Calibration sets from text and from real photos (scikit-image), and their failure modes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.calibration.dataset import check_calib_path, image_calibration, is_image_folder, text_calibration
from edgekit.calibration.images import ImagePreprocessor
from edgekit.errors import InputError


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg")
    Image.fromarray(data.camera()).save(folder / "camera.png")  # greyscale: converted to RGB
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return folder


def _model_dir(tmp_path, **cfg):
    base = {
        "do_resize": True,
        "size": {"height": 32, "width": 48},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**base, **cfg}))
    return tmp_path


def test_image_calibration_skips_unreadable_files_by_name(tmp_path, photos, caplog):
    calib = image_calibration(_model_dir(tmp_path), photos, "pixel_values", size=10, seed=1)
    assert len(calib.feeds) == 5 and calib.kind == "image"
    assert [s.endswith("broken.jpg") for s in calib.details["skipped"]] == [True]
    assert "broken.jpg" in caplog.text
    x = calib.feeds[0]["pixel_values"]
    assert x.shape == (1, 3, 32, 48) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0  # (v/255 - 0.5) / 0.5


def test_image_preprocessing_by_hand():
    from PIL import Image

    pre = ImagePreprocessor(
        size=4, crop=(2, 2), rescale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )
    image = Image.new("RGB", (8, 4), (255, 0, 51))  # shortest edge 4 -> stays 8x4, centre crop 2x2
    out = pre(image)
    assert out.shape == (3, 2, 2)
    np.testing.assert_allclose(
        out[:, 0, 0], [(1 - 0.5) / 0.25, (0 - 0.5) / 0.25, (0.2 - 0.5) / 0.25], atol=1e-6
    )


def test_no_readable_image_is_an_error(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"junk")
    with pytest.raises(InputError, match="no readable image"):
        image_calibration(_model_dir(tmp_path), folder, "pixel_values")


def test_missing_preprocessor_config_is_an_error(tmp_path, photos):
    with pytest.raises(InputError, match="preprocessor_config.json"):
        image_calibration(tmp_path, photos, "pixel_values")


def test_text_calibration_is_seeded_and_padded(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    from edgekit.calibration.text import sample_texts

    tok = AutoTokenizer.from_pretrained(str(tiny_models("bert")))
    data = tmp_path / "t.txt"
    data.write_text("\n".join(sample_texts()))
    names = ["input_ids", "attention_mask"]
    a = text_calibration(tok, data, names, size=6, seq_lens=(16, 32), seed=3)
    b = text_calibration(tok, data, names, size=6, seq_lens=(16, 32), seed=3)
    c = text_calibration(tok, data, names, size=6, seq_lens=(16, 32), seed=4)
    assert [f["input_ids"].shape for f in a.feeds] == [(1, 16), (1, 32)] * 3
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.manifest()["samples"] == 6 and a.manifest()["seq_lens"] == [16, 32]


def test_calib_path_checks(tmp_path, photos):
    with pytest.raises(InputError, match="needs calibration data"):
        check_calib_path(None)
    with pytest.raises(InputError, match="does not exist"):
        check_calib_path(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="is empty"):
        check_calib_path(tmp_path / "empty.txt")
    (tmp_path / "void").mkdir()
    with pytest.raises(InputError, match="holds no files"):
        check_calib_path(tmp_path / "void")
    assert is_image_folder(photos) and not is_image_folder(tmp_path / "void")
