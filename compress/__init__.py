"""Compression stages (knowledge distillation). Nothing here is exposed on the CLI until it works:
``edgekit distill`` lands with its issue."""
