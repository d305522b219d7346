"""CT volumes: a NIfTI file or a DICOM series folder -> a validated HU array on a RAS grid.

Every problem is a ``StudyError`` naming the file, with one of these stable kinds:
``missing``, ``empty_file``, ``format``, ``corrupt``, ``dimensionality``, ``non_finite``,
``all_air``, ``dicom`` (data/README.md lists what each means and how to fix it).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from reg2rg.data.errors import StudyError

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
AIR_HU = -1000.0  # foreground is strictly above this; a volume without any has nothing to crop

# What nibabel raises on a damaged file: unknown magic, broken gzip stream, short data, bad header.
_DECODE_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)
# DICOM (and SimpleITK) world coordinates are LPS; NIfTI's are RAS: flip the first two axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_INT16 = np.iinfo(np.int16)


@dataclass
class Volume:
    """A CT volume in Hounsfield units on a known grid."""

    array: np.ndarray  # (X, Y, Z) HU: int16 when the file holds integers, else float32
    affine: np.ndarray  # (4, 4) float64, voxel index -> RAS mm
    path: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along X, Y and Z."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def require_file(path: str | Path, what: str = "file", missing_kind: str = "missing") -> Path:
    """Cheap check that ``path`` exists and, when it is a file, is not empty; returns it as a Path."""
    path = Path(path)
    if not path.exists():
        raise StudyError(path, f"{what} not found (check the dataset root and the layout in data/README.md)", kind=missing_kind)
    if path.is_file() and path.stat().st_size == 0:
        raise StudyError(
            path,
            f"{what} is empty (0 bytes): the download or the program that wrote it was interrupted; fetch or write it again",
            kind="empty_file",
        )
    return path


def read_volume(path: str | Path) -> Volume:
    """Read and validate a CT volume from a ``.nii``/``.nii.gz`` file or a DICOM series folder."""
    path = require_file(path, what="volume")
    array, affine = read_dicom_series(path) if path.is_dir() else read_nifti(path)
    return Volume(_as_hu(path, array), affine, path)


def read_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a 3D NIfTI file into ((X, Y, Z) array, (4, 4) RAS affine).

    The header's slope/intercept is applied without a float64 copy: integer data with integer
    scaling stays integer, anything else becomes float32 (on-disk float64 is returned as is).
    A 4D file with a singleton last axis is squeezed to 3D.
    """
    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise StudyError(path, "unsupported file type: expected a .nii or .nii.gz file or a DICOM series folder", kind="format")
    try:
        image = nib.load(path, mmap=False)
    except _DECODE_ERRORS as error:
        raise _corrupt(path, error) from error
    shape = _spatial_shape(path, image.shape)
    try:
        array = _scaled(image.dataobj)
    except _DECODE_ERRORS as error:
        raise _corrupt(path, error) from error
    return array.reshape(shape), np.asarray(image.affine, dtype=np.float64)


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode the DICOM series in ``folder`` into ((X, Y, Z) array, (4, 4) RAS affine).

    SimpleITK returns (Z, Y, X) arrays with an LPS geometry; both are converted here. A folder
    with several series uses the one with the most slices (and says so in the log).
    """
    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise StudyError(
            folder,
            "no readable DICOM series in this folder: point the path at the folder that holds the slices (.dcm) of one series",
            kind="dicom",
        )
    files = max((reader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series), key=len)
    if len(series) > 1:
        log.warning("%s holds %d DICOM series; using the largest (%d slices)", folder, len(series), len(files))
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise StudyError(folder, f"cannot decode the DICOM series: {error}".strip(), kind="dicom") from error
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise StudyError(folder, "the DICOM series is not a single-channel 3D volume", kind="dimensionality")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (Z, Y, X) -> (X, Y, Z)
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) * np.asarray(image.GetSpacing())  # column j: index axis j in mm
    lps[:3, 3] = image.GetOrigin()
    return array, _LPS_TO_RAS @ lps


def _spatial_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    spatial = shape[:3] if len(shape) == 4 and shape[3] == 1 else shape
    if len(spatial) != 3 or 0 in spatial:
        raise StudyError(
            path,
            f"expected a 3D volume, got data of shape {shape}; "
            "store one non-empty 3D volume per file (a 4D file may only have a singleton last axis)",
            kind="dimensionality",
        )
    return spatial


def _scaled(proxy) -> np.ndarray:
    slope, inter = float(proxy.slope), float(proxy.inter)
    raw = np.asanyarray(proxy.get_unscaled())
    if slope == 1.0 and inter == 0.0:
        return raw
    if raw.dtype.kind in "iu" and slope.is_integer() and inter.is_integer():
        scaled = raw.astype(np.int32)
        scaled *= int(slope)
        scaled += int(inter)
        return scaled
    scaled = raw.astype(np.float32)
    scaled *= np.float32(slope)
    scaled += np.float32(inter)
    return scaled


def _corrupt(path: Path, error: Exception) -> StudyError:
    return StudyError(
        path,
        f"cannot decode the NIfTI file ({type(error).__name__}: {error}); it is damaged or truncated: download or write it again",
        kind="corrupt",
    )


def _as_hu(path: Path, array: np.ndarray) -> np.ndarray:
    """Check finiteness and foreground, then store integers as int16 and the rest as float32."""
    low, high = array.min(), array.max()  # NaN propagates through min/max: one pass each
    if array.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise StudyError(
            path,
            f"{bad} of {array.size} voxels are NaN or infinite; re-export the volume or replace them (e.g. with -1024 HU)",
            kind="non_finite",
        )
    if high <= AIR_HU:
        raise StudyError(
            path,
            f"no voxel is above {AIR_HU:g} HU (max {float(high):g}): the volume is all air, so there is no body to crop; "
            "check that it holds Hounsfield units (rescale slope and intercept)",
            kind="all_air",
        )
    if array.dtype.kind in "iub" and _INT16.min <= low and high <= _INT16.max:
        return array.astype(np.int16, copy=False)
    return array.astype(np.float32, copy=False)
