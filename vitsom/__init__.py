"""vitsom: a reproducible companion to *Simple Self-Organizing Map with Visual Transformer*
(ViT-SOM, Luo & Yuan, IEEE SPL 2025).

Modules: ``som`` (batch SOM layer and its math), ``vit`` (the compact ViT autoencoder),
``metrics``, ``data`` (dataset registry and loaders), ``config`` (recipes and profiles),
``train`` (training loop, evaluation, run records), ``records`` (provenance and result files).
"""
__version__ = "0.1.0"
