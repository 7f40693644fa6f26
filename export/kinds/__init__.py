"""The export of each model kind, one file each, registered in ``edgekit/models/kinds.py``.

A kind module has ``check(cfg, target)`` (the options that depend on the kind, before any work) and
``export(job) -> (export section, validation)``: it builds the PyTorch module, converts and
validates it with the kind's own cases, and hands the result to the target's role for it
(``graph``, ``decoder`` or ``seq2seq``, edgekit/export/targets/).
"""
