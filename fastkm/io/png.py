"""Indexed PNG encoding: the palette, the smallest bit depth, no row filter, libdeflate.

Why this and not Pillow's PNG writer (choices measured in ``bench/png_size.py``, results
in ``bench/results/png_size.md``):

- Row filter "none" for every row: on quantized photos every other filter (sub, up,
  average, Paeth, or the adaptive per-row choice) gave larger files, whatever the
  palette order (as given, by popularity, by luminance, or a nearest-colour tour).
  With no filter the palette order does not change the compressed size at all (deflate
  codes byte values by their frequencies, and reordering the palette only renames
  them), so the palette is written as given and labels keep their meaning.
- libdeflate (PyPI ``deflate``) instead of zlib: at level 6 it is no slower than
  Pillow's zlib level 3 (fastkm's former default) and writes files up to 26 % smaller
  at few colours (about the same at 256); level 11 (``optimize``) searches harder (near-optimal parsing): files
  another 6-14 % smaller, as small as level 12 makes them in 0.7 of its time, and
  7-31 % smaller than Pillow's ``optimize`` in about its time.  Small images, where
  that search costs little, get level 10 by default (``default_level``).
- tRNS holds alpha only up to the last entry that is not opaque: a palette with its
  translucent entries first (as fitted palettes are) gets a short chunk.

This module imports nothing of fastkm.
"""

import struct
import zlib

import deflate
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPE_PALETTE = 3
# The keyword of the iTXt chunk that holds XMP metadata.
XMP_KEYWORD = "XML:com.adobe.xmp"
# libdeflate levels: DEFAULT_LEVEL is the fastest that keeps most of the gain (levels 7-9
# are 0-2.5 % smaller for 1.5-4 times the time); OPTIMIZE_LEVEL is the slow search for
# the smallest file (12 is no smaller, 10 is 0.1-1.5 % larger).
DEFAULT_LEVEL = 6
OPTIMIZE_LEVEL = 11
# Images with up to this many bytes of scanlines (a 3 MP image at 32-256 colours, 6 MP at
# 16) are compressed at NEAR_OPTIMAL_LEVEL by default: libdeflate's near-optimal parsing
# writes files 5-8 % smaller than level 6 at every colour count (24 Kodak photos and a
# phone photo at 8-256 colours, plain and dithered), for about 0.15-0.5 s at 3 MP, where
# level 6 takes a few tens of milliseconds.  At 3 MP that is what keeps the files below
# pngquant's: level 6 wrote 0.95-1.11 of its bytes at 8-64 colours, level 10 0.90-1.05
# (bench/results/rate_distortion_12mp_half.md); the whole command stays faster than
# pngquant's at up to 64 colours, and at 128-256 takes 1.0-1.24 times its time for
# 0.87-0.92 of its bytes.
# Above it the time grows with the image and level 6 is kept (12-18 MP photos);
# --optimize takes OPTIMIZE_LEVEL at any size.
NEAR_OPTIMAL_LEVEL = 10
NEAR_OPTIMAL_MAX_BYTES = 3 << 20


def default_level(n_bytes):
    """The libdeflate level for n_bytes of scanlines when none is asked for."""
    return NEAR_OPTIMAL_LEVEL if n_bytes <= NEAR_OPTIMAL_MAX_BYTES else DEFAULT_LEVEL


def bit_depth(n_entries):
    """Bits per pixel for a palette of n_entries: 1, 2, 4 or 8."""
    if n_entries > 256:
        raise ValueError(f"a PNG palette holds at most 256 entries, not {n_entries}")
    return next(bits for bits in (1, 2, 4, 8) if n_entries <= 1 << bits)


def packed_rows(labels, bits):
    """labels (H, W) palette indices -> (H, ceil(W * bits / 8)) uint8, pixels packed
    big-end first into each byte as PNG stores them, the last byte of a row padded with 0."""
    labels = np.asarray(labels, dtype=np.uint8)
    if bits == 8:
        return labels
    height, width = labels.shape
    per_byte = 8 // bits
    padded_width = -(-width // per_byte) * per_byte
    padded = np.zeros((height, padded_width), np.uint8)
    padded[:, :width] = labels
    groups = padded.reshape(height, padded_width // per_byte, per_byte)
    rows = np.zeros((height, padded_width // per_byte), np.uint8)
    for position in range(per_byte):
        rows |= groups[:, :, position] << np.uint8(8 - bits * (position + 1))
    return rows


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def indexed_png(colours, labels, alpha=None, *, level=None, text=None, icc_profile=None, exif=None,
                dpi=None):
    """The bytes of an indexed PNG.

    colours      (m, 3) uint8 RGB palette, 1 <= m <= 256
    labels       (H, W) integer palette indices, each below m
    alpha        (m,) uint8 alpha of each entry (straight), or None when all are opaque
    level        libdeflate compression level, 1 (fastest) to 12 (smallest); None: by
                 size (default_level)
    text         {keyword: text} written as tEXt chunks (iTXt, UTF-8, where the text is
                 not Latin-1), or None
    icc_profile  ICC profile bytes (an iCCP chunk), or None for none
    exif         EXIF bytes (an eXIf chunk), or None
    dpi          (x, y) resolution in dots per inch (a pHYs chunk), or None
    """
    colours = np.ascontiguousarray(colours, dtype=np.uint8)
    n_entries = colours.shape[0]
    height, width = labels.shape
    bits = bit_depth(n_entries)
    rows = packed_rows(labels, bits)
    scanlines = np.zeros((height, rows.shape[1] + 1), np.uint8)  # a 0 (filter "none") before each row
    scanlines[:, 1:] = rows
    if level is None:
        level = default_level(scanlines.size)
    header = struct.pack(">IIBBBBB", width, height, bits, COLOUR_TYPE_PALETTE, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if icc_profile is not None:  # before PLTE, as the PNG specification orders them
        chunks.append(_chunk(b"iCCP", b"ICC Profile\0\0" + deflate.zlib_compress(bytes(icc_profile), level)))
    if dpi is not None:
        per_metre = [int(value / 0.0254 + 0.5) for value in dpi[:2]]
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1)))
    if exif is not None:
        chunks.append(_chunk(b"eXIf", bytes(exif[6:] if exif.startswith(b"Exif\0\0") else exif)))
    chunks.append(_chunk(b"PLTE", colours.tobytes()))
    if alpha is not None:
        translucent = np.flatnonzero(np.asarray(alpha) < 255)
        if translucent.size:
            chunks.append(_chunk(b"tRNS", np.asarray(alpha[: translucent[-1] + 1], dtype=np.uint8).tobytes()))
    for keyword, value in (text or {}).items():
        # XMP is read from iTXt only (the XMP specification), and so is text beyond Latin-1:
        # uncompressed, no language tag.
        if keyword == XMP_KEYWORD or not all(ord(c) < 256 for c in value):
            chunks.append(_chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
        else:
            chunks.append(_chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + value.encode("latin-1")))
    chunks.append(_chunk(b"IDAT", deflate.zlib_compress(scanlines, level)))  # the buffer itself, no copy
    chunks.append(_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)
