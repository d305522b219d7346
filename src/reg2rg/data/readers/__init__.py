"""Study readers: each turns one dataset layout into a ``StudyIndex`` of validated ``StudyRecord``s.

A reader is a small class whose constructor arguments are its Hydra config (configs/data/*.yaml)
and whose ``read(split)`` does the cheap checks only; preprocessing decodes the files.
"""

from reg2rg.data.readers.common import StudyIndex, StudyText
from reg2rg.data.readers.ctrg import CTRGReader
from reg2rg.data.readers.manifest import ManifestReader
from reg2rg.data.readers.radgenome import RadGenomeReader

__all__ = ["CTRGReader", "ManifestReader", "RadGenomeReader", "StudyIndex", "StudyText"]
