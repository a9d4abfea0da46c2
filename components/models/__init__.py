"""One Keras builder per architecture (``build_*``), the layers they use, and the raw-row scorer."""

from __future__ import annotations


def register_layers() -> None:
    """Import every module of this package, so each custom Keras layer a saved model names is
    registered before the model loads (keras.saving resolves ``funnel>...`` names)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
