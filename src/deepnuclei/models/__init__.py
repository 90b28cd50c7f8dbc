"""The segmentation networks of both papers, selectable by name (see `registry`)."""

from .registry import (
    MODELS,
    ModelSpec,
    build_model,
    count_parameters,
    get_spec,
    list_models,
    models_table,
    parameters_of,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "get_spec",
    "list_models",
    "models_table",
    "parameters_of",
]
