"""Image files in and out: decoding to uint8 arrays with their colour profile, indexed
output, atomic writes.

Reading and writing go through Pillow, colour conversion through its LittleCMS
bindings (ImageCms).  Writing produces indexed (palette) files where the format has
them, and every file is written to a temporary name in the target folder and renamed
into place, so an interrupted write never leaves a partial file behind.  This module
imports nothing else of fastkm.

One module per concern: ``read`` (decoding, with the colour profile and metadata),
``write`` (indexed and full-colour outputs), ``animation`` (GIF, APNG and WebP frames,
timing and loop count), ``profiles`` (colour spaces, conversion to sRGB), ``palettes``
(palette files), ``atomic`` (temporary file and rename), ``paths``.
"""

# ruff: noqa: F401
from .animation import (
    ANIMATION_SUFFIXES,
    Animation,
    gif_palette_size,
    is_animation,
    read_animation,
    write_animation,
)
from .atomic import ImageWriteError, OutputExistsError, Outputs, _atomic_save
from .palettes import PALETTE_SUFFIXES, palette_capacity_error, read_palette, write_palette
from .profiles import PROFILE_FORMATS, ProfileError, carries_profile, describe, is_srgb, rgb_profile, same_space, to_srgb
from .read import (
    DEFAULT_MAX_PIXELS,
    ImageFile,
    ImageReadError,
    ImageReadWarning,
    Metadata,
    float_to_uint8,
    frame_count,
    from_pillow,
    read_colour_profile,
    read_image,
    read_image_file,
)
from .write import (
    FORMAT_SUFFIXES,
    INDEXED_SUFFIXES,
    MAX_INDEXED_COLORS,
    RGB_SUFFIXES,
    alpha_capacity_error,
    encode_quantized,
    has_alpha,
    indexed_capacity_error,
    output_format,
    output_kind,
    palette_image,
    write_bytes,
    write_image,
    write_quantized,
)
