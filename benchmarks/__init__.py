"""Benchmarks: the ``edgekit bench`` harness, and runnable benchmarks that compare edgekit with
PyTorch (and peer tools where they install) as ratios measured in one run."""
