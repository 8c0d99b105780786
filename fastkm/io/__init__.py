"""Image files in and out: decoding to uint8 arrays, indexed output, atomic writes.

Reading goes through imageio (Pillow underneath).  Writing produces indexed (palette)
files where the format has them, and every file is written to a temporary name in the
target folder and renamed into place, so an interrupted write never leaves a partial
file behind.  This module imports nothing else of fastkm.

One module per concern: ``read`` (decoding), ``write`` (indexed and full-colour
outputs), ``animation`` (GIF, APNG and WebP frames, timing and loop count),
``palettes`` (palette files), ``atomic`` (temporary file and rename).
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
from .read import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    ImageReadWarning,
    float_to_uint8,
    frame_count,
    from_pillow,
    read_image,
)
from .write import (
    INDEXED_SUFFIXES,
    MAX_INDEXED_COLORS,
    RGB_SUFFIXES,
    alpha_capacity_error,
    has_alpha,
    indexed_capacity_error,
    output_kind,
    palette_image,
    write_image,
    write_quantized,
)
