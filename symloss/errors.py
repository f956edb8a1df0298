"""The exceptions symloss raises on bad input; each reads as one clear line."""


class SymlossError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class SpecError(SymlossError):
    """A spec file (or an expression given to ``Loss.from_expr``) is malformed."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: field '{field}': {problem}")


class DerivationError(SymlossError):
    """The expression is valid but cannot be turned into kernels."""


class InputError(SymlossError, ValueError):
    """Arrays or parameters passed to a loss are unusable (shape, dtype, domain)."""
