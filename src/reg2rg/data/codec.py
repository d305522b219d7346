"""Compact, fast array encodings for the preprocessing cache.

Integer arrays are byte-shuffled (all low bytes, then all high bytes) and zstd-compressed:
CT noise lives in the low byte, so the high bytes compress to almost nothing. Boolean masks
are bit-packed first. Decoding a 480x480x240 int16 volume takes a few tenths of a second; a
256x256x64 int16 sample volume a few milliseconds, decompressed and interleaved without a copy.
"""

from __future__ import annotations

import numpy as np
import zstandard

_LEVEL = 3


def encode(array: np.ndarray) -> np.ndarray:
    """Numeric array -> uint8 blob (byte-shuffled zstd). Shape and dtype are kept by the caller."""
    data = np.ascontiguousarray(array)
    shuffled = data.view(np.uint8).reshape(-1, data.itemsize).T  # (itemsize, N): byte planes
    return np.frombuffer(zstandard.ZstdCompressor(level=_LEVEL).compress(shuffled.tobytes()), dtype=np.uint8)


def decode(
    blob: np.ndarray, dtype: str | np.dtype, shape: tuple[int, ...], out: np.ndarray | None = None
) -> np.ndarray:
    """uint8 blob -> array; written into ``out`` (C-contiguous, this dtype and shape) when given."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    if out is None:
        out = np.empty(shape, dtype)
    elif out.dtype != dtype or out.shape != tuple(shape) or not out.flags.c_contiguous:
        raise ValueError(f"cannot decode {dtype} {tuple(shape)} into a {out.dtype} {out.shape} array")
    if dtype.itemsize == 1:  # one byte plane: straight into place
        _decompress_into(blob, out.reshape(count).view(np.uint8))
        return out
    planes = np.empty((dtype.itemsize, count), dtype=np.uint8)
    _decompress_into(blob, planes.reshape(-1))
    if dtype.itemsize == 2:  # low byte | high byte << 8, written little-endian: 3x faster than strided copies
        words = out.reshape(count).view("<u2")
        np.left_shift(planes[1], 8, out=words, dtype="<u2")
        words |= planes[0]
        return out
    interleaved = out.reshape(count).view(np.uint8).reshape(count, dtype.itemsize)
    for byte, plane in enumerate(planes):
        interleaved[:, byte] = plane
    return out


def _decompress_into(blob: np.ndarray, buffer: np.ndarray) -> None:
    """Decompress ``blob`` into the uint8 ``buffer``, which it must fill exactly."""
    view = memoryview(buffer)
    filled = 0
    with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
        while filled < len(view) and (read := reader.readinto(view[filled:])):
            filled += read
        longer = bool(reader.read(1))
    if filled != len(view) or longer:
        raise ValueError(f"the blob decodes to {'more' if longer else filled} bytes, not {len(view)}")


def encode_mask(mask: np.ndarray) -> np.ndarray:
    """Boolean array -> uint8 blob (bit-packed, zstd)."""
    packed = np.packbits(np.ascontiguousarray(mask, dtype=bool).ravel())
    return np.frombuffer(zstandard.ZstdCompressor(level=_LEVEL).compress(packed.tobytes()), dtype=np.uint8)


def decode_mask(blob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    packed = np.frombuffer(
        zstandard.ZstdDecompressor().decompress(blob.tobytes(), max_output_size=(count + 7) // 8), dtype=np.uint8
    )
    return np.unpackbits(packed, count=count).view(bool).reshape(shape)
