"""The parts of CompressAI the codec uses (its entropy models and rounding op), imported without the rest.

`import compressai.entropy_models` first runs `compressai/__init__.py`, which imports the whole library:
its datasets (torch_geometric, torchvision, pandas), model zoo, losses and training transforms, seconds before
a decoder could start. When CompressAI is not imported yet, its package is registered here unexecuted (its
sub-modules import from its folder as usual) with the two functions its entropy models ask of it, and
`scipy.stats` (used only to build CDF tables, `GaussianConditional.update_scale_table`) is left to load on
that first use. Any other attribute of the package (`compressai.zoo`, `set_entropy_coder`, ...) runs the
real `__init__` on first use, so code that imports CompressAI later still gets all of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ENTROPY_CODER = "ans"  # CompressAI's default coder (the codec codes with its own rANS, rans_bounded)


def _register_package() -> None:
    """Put CompressAI's package, unexecuted, in `sys.modules` (nothing to do once it is imported)."""
    if "compressai" in sys.modules:
        return
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.loader is None:
        return  # not installed: the import below says so
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:
        """A sub-module on first use; anything else runs CompressAI's own `__init__` first."""
        if importlib.util.find_spec(f"compressai.{name}") is not None:
            return importlib.import_module(f"compressai.{name}")
        vars(package).pop("__getattr__", None)
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[attr-defined]
    package.get_entropy_coder = lambda: ENTROPY_CODER  # type: ignore[attr-defined]
    package.available_entropy_coders = lambda: [ENTROPY_CODER]  # type: ignore[attr-defined]
    sys.modules["compressai"] = package


@contextmanager
def _scipy_stats_on_first_use() -> Iterator[None]:
    """While inside, `import scipy.stats` binds `scipy` without loading `scipy.stats`; afterwards scipy's own
    lazy sub-module access loads it where `scipy.stats` is first used (nothing changes once it is loaded)."""
    import scipy

    if "scipy.stats" in sys.modules or not callable(vars(scipy).get("__getattr__")):
        yield
        return
    sys.modules["scipy.stats"] = types.ModuleType("scipy.stats")
    try:
        yield
    finally:
        del sys.modules["scipy.stats"]


_register_package()
with _scipy_stats_on_first_use():
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.ops import quantize_ste  # noqa: E402

__all__ = ["EntropyBottleneck", "GaussianConditional", "quantize_ste"]
