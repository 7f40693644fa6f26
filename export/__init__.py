"""Export: a trained model folder in, a validated artifact folder out."""

from edgekit.export.api import export_model
from edgekit.export.config import ExportConfig

__all__ = ["ExportConfig", "export_model"]
