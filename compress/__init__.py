"""Compression methods: knowledge distillation (``compress.distill``), INT8 of stateless graphs
(``int8``: ONNX Runtime Q/DQ and OpenVINO NNCF), SmoothQuant (``smooth``), the Q/DQ graph rewrites
(``ort_quant``), weight-only int8/int4 for KV-cache models (``weight_only``), and the quality
measure and accuracy guard every quantizer is judged by (``quality``)."""
