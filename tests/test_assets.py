"""The packaged real models and data that the end-to-end tests and benchmarks read."""

from __future__ import annotations


def test_mpnet_is_joined_from_its_five_wheels_into_an_hf_folder():
    from transformers import AutoConfig, AutoTokenizer

    from edgekit.assets import MPNET

    folder = MPNET.path()
    assert (folder / "model.safetensors").stat().st_size > 400 * 2**20
    assert AutoConfig.from_pretrained(str(folder)).model_type == "mpnet"
    assert len(AutoTokenizer.from_pretrained(str(folder))) == 30527  # differs from MiniLM's 30522
    assert MPNET.path() == folder  # second call: from the cache


def test_data_packages():
    from edgekit.assets import bbc_news, lee_background, lee_similarity, read_latin1_lines

    assert len(read_latin1_lines(lee_background())) == 300
    docs, ratings = lee_similarity()
    assert len(read_latin1_lines(docs)) == 50 and ratings.is_file()
    assert len(list(bbc_news().glob("*/*.txt"))) == 2225
