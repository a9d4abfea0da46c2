"""Keras 3 model builders, one module per architecture; ``build_*`` never fits."""
