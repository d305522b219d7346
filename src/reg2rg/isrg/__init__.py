"""ISRG-CT: interactive point-prompted 3D lesion segmentation with a structured attribute report (docs/isrg.md).

``session.InteractiveSession`` is the entry point for a user: a trained model, a CT volume and clicks.
"""
