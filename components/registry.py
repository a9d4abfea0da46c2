"""Compatibility shim: model versions logged before the 2026-12 layout name this module as their
MLflow ``loader_module``; it must stay so that every historical champion (and so every rollback
target) still loads. New versions name ``components.pyfunc``. The registry itself lives in
``components.release.registry``."""

from __future__ import annotations

from components.pyfunc import _load_pyfunc

__all__ = ["_load_pyfunc"]
