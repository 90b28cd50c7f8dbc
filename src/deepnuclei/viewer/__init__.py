"""`deepnuclei view`: a local web app that segments an MRI with a trained model and shows the nuclei
over it in three synchronised views (axial, coronal, sagittal), drawn in the browser by NiiVue."""

from .server import create_app, serve

__all__ = ["create_app", "serve"]
