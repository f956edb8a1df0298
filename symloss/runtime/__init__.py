"""runtime: the Loss API over generated kernel modules."""
from .loss import Loss, load

__all__ = ["Loss", "load"]
