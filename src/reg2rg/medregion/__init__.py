"""MedRegion-CT (Kyung et al., 2025): a second model family beside Reg2RG.

A 2D slice encoder (Rad-DINO layout), R² token pooling, a mask-driven extractor (two tokens per region mask)
and patient-specific attributes computed from the masks, rendered into the prompt. Six regions: ``REGIONS``.
"""
