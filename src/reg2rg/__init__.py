"""reg2rg: region-guided CT report generation (a reproduction of Reg2RG, IEEE TMI 2025)."""

from reg2rg.constants import VERSION

__version__ = VERSION


def __getattr__(name: str):
    """Lazy entry points, so ``import reg2rg`` stays cheap (no torch until one is used)."""
    if name == "from_pretrained":
        from .models.checkpoint import from_pretrained

        return from_pretrained
    raise AttributeError(f"module 'reg2rg' has no attribute {name!r}")
