"""Serving's model store and its settings."""

from __future__ import annotations

import pytest

from components.serving.schema import ServingError
from components.serving.store import ServeParams


def test_serve_params_refuse_impossible_settings():
    with pytest.raises(ServingError, match="poll_interval_s"):
        ServeParams(poll_interval_s=0)
