"""Deprecated names warn once per process and still work."""

from __future__ import annotations

import warnings

from vvc_lightning import deprecation


def test_a_deprecated_alias_warns_once_and_returns_the_target_result():
    alias = deprecation.deprecated_alias("tests.old_add", "tests.add", lambda a, b: a + b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert alias(1, 2) == 3
        assert alias(2, 3) == 5
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert messages == ["tests.old_add is deprecated; use tests.add"]
