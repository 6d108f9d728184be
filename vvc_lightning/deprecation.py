"""Deprecated names: a FutureWarning the first time each one is used in a process."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_WARNED: set[str] = set()
_LOCK = threading.Lock()


def warn_deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn once per process that `old` is deprecated and `new` replaces it."""
    with _LOCK:
        if old in _WARNED:
            return
        _WARNED.add(old)
    warnings.warn(f"{old} is deprecated; use {new}", FutureWarning, stacklevel=stacklevel)


def deprecated_alias(old: str, new: str, target: F) -> F:
    """`target` under a deprecated name: calling it warns once, then behaves as `target`."""

    @functools.wraps(target)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_deprecated(old, new, stacklevel=3)
        return target(*args, **kwargs)

    return alias  # type: ignore[return-value]
