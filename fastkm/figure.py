"""The side-by-side figure: original and quantized image with captions, as one image."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _over_checkerboard(image, square=8):
    """An RGBA image composited over a light grey checkerboard, as image editors show it."""
    yy, xx = np.mgrid[: image.height, : image.width]
    board = np.where(((yy // square + xx // square) % 2)[..., None] == 0, 255, 204).astype(np.uint8)
    background = Image.fromarray(np.repeat(board, 3, axis=2)).convert("RGBA")
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def _panel(array, max_side):
    image = Image.fromarray(array)
    image = _over_checkerboard(image) if image.mode in ("RGBA", "LA") else image.convert("RGB")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # Nearest neighbour: the shrunken quantized panel keeps exactly its palette,
        # and the original is shrunk the same way so only the colours differ.
        image = image.resize(size, Image.Resampling.NEAREST)
    return image


def palette_strip(palette, shares, width, height):
    """An RGB strip (height, width, 3) uint8 of palette (m, C) uint8 colours side by side,
    each as wide as its share (m,) of the width (at least one pixel while the width
    allows), in the order given.  Grey palettes are drawn grey; alpha is left out."""
    colours = palette[:, :3] if palette.shape[1] >= 3 else np.repeat(palette[:, :1], 3, axis=1)
    shares = np.asarray(shares, dtype=np.float64)
    edges = np.rint(np.concatenate([[0.0], np.cumsum(shares)]) / max(shares.sum(), 1e-300) * width).astype(np.int64)
    # Every colour keeps a visible band: shift the edges so each band is >= 1 pixel.
    minimum = 1 if width >= len(shares) else 0
    for i in range(1, len(edges)):
        edges[i] = max(edges[i], edges[i - 1] + minimum)
    overflow = edges[-1] - width
    if overflow > 0:  # taken back from the widest band
        widest = int(np.argmax(np.diff(edges)))
        edges[widest + 1:] -= overflow
    edges[-1] = width
    # Zeros, not np.empty: with no colour (an image whose every pixel is transparent)
    # no band covers the strip, and it must be black, not leftover memory.
    strip = np.zeros((height, width, 3), dtype=np.uint8)
    for colour, start, stop in zip(colours, edges[:-1], edges[1:]):
        strip[:, start:stop] = colour
    return strip


def side_by_side(images, captions, *, max_side=1024, gap=16, strip=None):
    """One RGB image (h, w, 3) uint8: the images next to each other, each captioned.

    images    a sequence of (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) uint8 images (alpha
              shown over a checkerboard), usually the original and its quantized versions
    captions  one string per image, drawn under it
    max_side  each panel is shrunk (nearest neighbour) so its longer side is at most this
    strip     optional (palette (m, C) uint8, shares (m,)): a palette strip under the
              panels, across the figure, each colour as wide as its share
    """
    panels = [_panel(image, max_side) for image in images]
    font_size = max(14, panels[0].height // 28)
    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Each column is as wide as its panel or its caption, whichever is wider.
    widths = [max(panel.width, int(measure.textlength(caption, font=font)) + 1) for panel, caption in zip(panels, captions)]
    caption_height = int(font_size * 1.8)
    width = sum(widths) + (len(panels) + 1) * gap
    panels_height = max(p.height for p in panels) + caption_height + 2 * gap
    strip_height = max(24, panels_height // 10) if strip is not None else 0
    height = panels_height + (strip_height + gap if strip is not None else 0)
    figure = Image.new("RGB", (width, height), BACKGROUND)
    if strip is not None:
        palette, shares = strip
        band = palette_strip(palette, shares, width - 2 * gap, strip_height)
        figure.paste(Image.fromarray(band), (gap, panels_height))
    draw = ImageDraw.Draw(figure)
    x = gap
    for panel, caption, column in zip(panels, captions, widths):
        figure.paste(panel, (x + (column - panel.width) // 2, gap))
        text_width = draw.textlength(caption, font=font)
        draw.text((x + (column - text_width) / 2, gap + panel.height + font_size * 0.35), caption, fill=TEXT, font=font)
        x += column + gap
    return np.asarray(figure)
