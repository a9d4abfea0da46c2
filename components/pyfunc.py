"""The stable MLflow loader entry point of funnel's models (the ``loader_module`` in each MLmodel).

Every registered version names this module in its MLmodel file, so it never moves and never
grows: it only hands over to wherever the loader lives today. Versions logged before the
2026-12 layout name ``components.registry`` instead, which is kept as a shim for them.
"""

from __future__ import annotations


def _load_pyfunc(path: str):
    """MLflow's pyfunc loader contract: the saved Keras model behind funnel's raw-row scorer."""
    from components.release.registry import load_pyfunc

    return load_pyfunc(path)
