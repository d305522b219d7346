"""A local web page for a study: three views with window presets, region reports beside their masks, and
ISRG-CT lesion mode (click, mask, attribute report). ``scripts/serve.py`` starts it; docs/web.md shows it."""
