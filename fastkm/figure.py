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


def side_by_side(images, captions, *, max_side=1024, gap=16):
    """One RGB image (h, w, 3) uint8: the images next to each other, each captioned.

    images    a sequence of (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) uint8 images (alpha
              shown over a checkerboard), usually the original and its quantized versions
    captions  one string per image, drawn under it
    max_side  each panel is shrunk (nearest neighbour) so its longer side is at most this
    """
    panels = [_panel(image, max_side) for image in images]
    font_size = max(14, panels[0].height // 28)
    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Each column is as wide as its panel or its caption, whichever is wider.
    widths = [max(panel.width, int(measure.textlength(caption, font=font)) + 1) for panel, caption in zip(panels, captions)]
    caption_height = int(font_size * 1.8)
    width = sum(widths) + (len(panels) + 1) * gap
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
