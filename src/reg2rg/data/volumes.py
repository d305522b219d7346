"""CT volumes: a NIfTI file or a DICOM series folder -> a validated HU array on a RAS grid.

Every problem is a ``StudyError`` naming the file, with one of these stable kinds:
``missing``, ``unreadable``, ``empty_file``, ``format``, ``corrupt``, ``too_large``,
``dimensionality``, ``too_small``, ``affine``, ``non_finite``, ``all_air``, ``intensity``,
``dicom`` (data/README.md lists what each means and how to fix it).
"""

from __future__ import annotations

import errno
import gzip
import logging
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from reg2rg.data.errors import MAX_VOXELS, StudyError

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
AIR_HU = -1000.0  # foreground is strictly above this; a volume without any has nothing to crop
MIN_AXIS_VOXELS = 4  # a CT volume has at least this many voxels along each axis

# Hounsfield-unit plausibility, on the whole volume after the header's scaling (data/README.md).
AIR_BAND = (-1100, -900)  # air around the body and in the airways
SOFT_TISSUE_BAND = (-200, 300)  # fat, muscle, blood, organs
MIN_AIR_FRACTION = 0.01
MIN_SOFT_TISSUE_FRACTION = 0.05
CT_MAX_HU = 3071  # top of the usual 12-bit CT range; only small metal objects go beyond it
MAX_ABOVE_RANGE_FRACTION = 0.01

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
    stored_as: str = ""  # how the file stores the values (data type and scaling), for messages

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
    if stat.S_ISREG(_stat(path, what, missing_kind).st_mode) and path.stat().st_size == 0:
        raise StudyError(
            path,
            f"{what} is empty (0 bytes): the download or the program that wrote it was interrupted; fetch or write it again",
            kind="empty_file",
        )
    return path


def require_folder(path: str | Path, what: str = "folder", missing_kind: str = "missing") -> Path:
    """Cheap check that ``path`` is a folder; returns it as a Path."""
    path = Path(path)
    if not stat.S_ISDIR(_stat(path, what, missing_kind).st_mode):
        raise StudyError(
            path, f"{what} is a file, not a folder (check the layout in data/README.md)", kind=missing_kind
        )
    return path


def _stat(path: Path, what: str, missing_kind: str) -> os.stat_result:
    """``os.stat`` of ``path``; a path that cannot be reached is a StudyError that says why."""
    try:
        return path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            problem = f"{what} is a symbolic link loop (the link leads back to itself): point it at the real file"
            raise StudyError(path, problem, kind="unreadable") from error
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            if path.is_symlink():
                problem = (
                    f"{what} is a symbolic link to {os.readlink(path)}, which does not exist: fix or remove the link"
                )
            else:
                problem = f"{what} not found (check the dataset root and the layout in data/README.md)"
            raise StudyError(path, problem, kind=missing_kind) from error
        raise StudyError(
            path, f"{what} cannot be read ({error.strerror}): check its permissions", kind="unreadable"
        ) from error


def read_volume(path: str | Path, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read and validate a CT volume from a ``.nii``/``.nii.gz`` file or a DICOM series folder.

    ``max_voxels``: a NIfTI header claiming more voxels is rejected before anything is decoded.
    """
    path = require_file(path, what="volume")
    if path.is_dir():
        array, affine = read_dicom_series(path)
        stored_as = "a DICOM series (rescale slope and intercept applied)"
    else:
        array, affine, stored_as = _read_nifti(path, max_voxels)
    if min(array.shape) < MIN_AXIS_VOXELS:
        shape = " x ".join(map(str, array.shape))
        raise StudyError(
            path,
            f"the volume has only {shape} voxels; a CT volume needs at least {MIN_AXIS_VOXELS} voxels along each axis",
            kind="too_small",
        )
    return Volume(_as_hu(path, array), affine, path, stored_as)


def read_nifti(path: str | Path, max_voxels: int = MAX_VOXELS) -> tuple[np.ndarray, np.ndarray]:
    """Decode a 3D NIfTI file into ((X, Y, Z) array, (4, 4) RAS affine).

    The header's slope/intercept is applied without a float64 copy: integer data with integer
    scaling stays integer, anything else becomes float32 (on-disk float64 is returned as is).
    A 4D file with a singleton last axis is squeezed to 3D. A header claiming more than
    ``max_voxels`` voxels is rejected before decoding; a ``.nii.gz`` is read to the end of its
    gzip stream, so that a damaged byte fails the gzip checksum instead of becoming wrong voxels.
    """
    array, affine, _ = _read_nifti(Path(path), max_voxels)
    return array, affine


def _read_nifti(path: Path, max_voxels: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``read_nifti`` plus how the file stores its values (data type and scaling)."""
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise StudyError(
            path, "unsupported file type: expected a .nii or .nii.gz file or a DICOM series folder", kind="format"
        )
    try:
        image = nib.load(path, mmap=False)  # reads the header only
    except _DECODE_ERRORS as error:
        raise _corrupt(path, error) from error
    shape = _spatial_shape(path, image.shape)
    voxels = math.prod(image.shape)
    if voxels > max_voxels:
        raise StudyError(
            path,
            f"the header claims {' x '.join(map(str, image.shape))} = {voxels:,} voxels, more than data.max_voxels = "
            f"{max_voxels:,}: the header is damaged (or, for a volume this large, raise data.max_voxels)",
            kind="too_large",
        )
    affine = _checked_affine(path, np.asarray(image.affine, dtype=np.float64))
    data_end = image.dataobj.offset + voxels * image.get_data_dtype().itemsize  # bytes of header and data
    try:
        content = _gunzip_checked(path, data_end) if path.name.endswith(".gz") else None
        held = path.stat().st_size if content is None else len(content)
        if held < data_end:
            raise StudyError(
                path,
                f"the file holds {held:,} of the {data_end:,} bytes its header describes: it is truncated; download or write it again",
                kind="corrupt",
            )
        if content is not None:
            image = type(image).from_bytes(content)
        array = _scaled(image.dataobj)
    except _DECODE_ERRORS as error:
        raise _corrupt(path, error) from error
    proxy = image.dataobj
    scaling = (
        "no scaling"
        if (proxy.slope, proxy.inter) == (1.0, 0.0)
        else f"slope {proxy.slope:g}, intercept {proxy.inter:g}"
    )
    return array.reshape(shape), affine, f"{image.get_data_dtype()} with {scaling}"


def _gunzip_checked(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a gzip file's content. The stream is read to its end, so that gzip checks
    the CRC-32 and length of every member: a damaged byte raises instead of decoding to wrong values."""
    with gzip.open(path, "rb") as stream:
        content = stream.read(size)
        while stream.read(1 << 24):  # data past what the header describes (normally none)
            pass
    return content


def _checked_affine(path: Path, affine: np.ndarray) -> np.ndarray:
    """The (4, 4) voxel-to-world affine, when every voxel axis has a finite, positive size and the axes span 3D."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # (3,) mm per voxel along each axis
    usable = np.isfinite(affine).all() and spacing.min() > 0
    if usable:  # |det| over the product of the spacings: 1 for orthogonal axes, 0 when they are coplanar
        usable = abs(np.linalg.det(affine[:3, :3])) / spacing.prod() > 1e-3
    if not usable:
        raise StudyError(
            path,
            f"the header's voxel-to-world affine is unusable (voxel spacing {np.round(spacing, 4).tolist()} mm, "
            f"matrix {np.round(affine[:3, :3], 4).tolist()}): every voxel axis needs a positive size and its own "
            "direction; fix pixdim and the sform/qform of the header",
            kind="affine",
        )
    return affine


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
    lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) * np.asarray(
        image.GetSpacing()
    )  # column j: index axis j in mm
    lps[:3, 3] = image.GetOrigin()
    return array, _checked_affine(folder, _LPS_TO_RAS @ lps)


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
    if isinstance(error, StudyError):
        return error
    if isinstance(error, gzip.BadGzipFile) and "CRC" in str(error):
        return StudyError(
            path,
            f"the gzip checksum does not match the content ({error}): the file was damaged after it was written; "
            "download or write it again",
            kind="corrupt",
        )
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


def check_hu_plausible(path: str | Path, hu: np.ndarray, stored_as: str = "") -> None:
    """Raise an ``intensity`` StudyError when ``hu`` (X, Y, Z) does not look like Hounsfield units of a CT.

    A chest CT has air near -1000 HU, soft tissue between -200 and 300 HU, and almost nothing above
    the CT range (thresholds above). Volumes stored in other units (8-bit images, raw scanner values
    stored as HU + 1024 without the intercept) fail here instead of becoming training data.
    """

    def fraction(low: float, high: float) -> float:
        return np.count_nonzero((hu >= low) & (hu <= high)) / hu.size

    air, tissue = fraction(*AIR_BAND), fraction(*SOFT_TISSUE_BAND)
    above = np.count_nonzero(hu > CT_MAX_HU) / hu.size
    failed = []
    if air < MIN_AIR_FRACTION:
        failed.append(
            f"{air:.1%} of the voxels are air ({AIR_BAND[0]}..{AIR_BAND[1]} HU; needs at least {MIN_AIR_FRACTION:.0%})"
        )
    if tissue < MIN_SOFT_TISSUE_FRACTION:
        failed.append(
            f"{tissue:.1%} are soft tissue ({SOFT_TISSUE_BAND[0]}..{SOFT_TISSUE_BAND[1]} HU; "
            f"needs at least {MIN_SOFT_TISSUE_FRACTION:.0%})"
        )
    if above > MAX_ABOVE_RANGE_FRACTION:
        failed.append(f"{above:.1%} are above {CT_MAX_HU} HU (at most {MAX_ABOVE_RANGE_FRACTION:.0%})")
    if failed:
        stored = f"; the file stores {stored_as}" if stored_as else ""
        raise StudyError(
            path,
            f"the values do not look like Hounsfield units (range {int(hu.min())}..{int(hu.max())}): {'; '.join(failed)}{stored}. "
            "Raw scanner values stored as HU + 1024 need the intercept -1024 in the header (scl_inter); "
            "8-bit images cannot hold HU: convert the source to HU",
            kind="intensity",
        )
