"""Input data for validation, benchmarking and INT8 calibration, and the activation ranges it gives.

One place turns user data (a text file, a jsonl, a folder of .txt files) or the built-in
sample into the tokenised arrays every backend runs on, so each stage sees the same inputs.
"""

from edgekit.calibration.text import load_texts, sample_texts, tokenize_fixed

__all__ = ["load_texts", "sample_texts", "tokenize_fixed"]
