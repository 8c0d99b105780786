"""The side-by-side figure: original and quantized image with captions, as one image."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _panel(array, max_side):
    image = Image.fromarray(array).convert("RGB")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # Nearest neighbour: the shrunken quantized panel keeps exactly its palette,
        # and the original is shrunk the same way so only the colours differ.
        image = image.resize(size, Image.Resampling.NEAREST)
    return image


def side_by_side(original, quantized, captions, *, max_side=1024, gap=16):
    """One RGB image (h, w, 3) uint8: the two images next to each other, each captioned.

    original, quantized  (H, W, 3) or (H, W) uint8, the same shape
    captions             two strings, drawn under the images
    max_side             each panel is shrunk (nearest neighbour) so its longer side is at most this
    """
    panels = [_panel(original, max_side), _panel(quantized, max_side)]
    font_size = max(14, panels[0].height // 28)
    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Each column is as wide as its panel or its caption, whichever is wider.
    widths = [max(panel.width, int(measure.textlength(caption, font=font)) + 1) for panel, caption in zip(panels, captions)]
    caption_height = int(font_size * 1.8)
    width = sum(widths) + 3 * gap
    height = max(p.height for p in panels) + caption_height + 2 * gap
    figure = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    x = gap
    for panel, caption, column in zip(panels, captions, widths):
        figure.paste(panel, (x + (column - panel.width) // 2, gap))
        text_width = draw.textlength(caption, font=font)
        draw.text((x + (column - text_width) / 2, gap + panel.height + font_size * 0.35), caption, fill=TEXT, font=font)
        x += column + gap
    return np.asarray(figure)
