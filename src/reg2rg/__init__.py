"""reg2rg: region-guided CT report generation (a reproduction of Reg2RG, IEEE TMI 2025)."""

__version__ = "0.1.0"
