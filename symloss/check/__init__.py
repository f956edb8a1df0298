"""check: verification of generated kernels (finite differences, mpmath, fused vs separate)."""
from .verify import Result
from .verify import check_loss as _check_elementwise


def check_loss(loss, *args, **kwargs) -> list[Result]:
    """Every check of one loss; row losses go to :mod:`symloss.check.verify_row`."""
    if loss.spec.kind == "row":
        from .verify_row import check_row_loss

        return check_row_loss(loss)
    return _check_elementwise(loss, *args, **kwargs)


__all__ = ["Result", "check_loss"]
