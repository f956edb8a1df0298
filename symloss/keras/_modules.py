"""The generated keras module of a loss: catalog, spec file or expression (symloss/framework_modules.py)."""
from __future__ import annotations

from ..framework_modules import FrameworkModules

_MODULES = FrameworkModules("keras")
module_for_spec = _MODULES.module_for_spec
resolve = _MODULES.resolve
