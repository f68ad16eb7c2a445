"""Pictures for TensorBoard drawn straight into tensors (CHW, values in [0, 1]).

Drawing with tensors instead of matplotlib keeps ~0.7 s of imports out of every run.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from torch import Tensor

# What a task shows: a CHW picture (float in [0, 1], or uint8 as Pillow draws it), or a markdown text.
Visual = Tensor | str
# Light backgrounds for predicted regions, strong colors for the points (class 0, class 1, ...).
_PALETTE = torch.tensor(
    [[0.84, 0.15, 0.16], [0.12, 0.47, 0.71], [0.17, 0.63, 0.17], [1.0, 0.5, 0.05], [0.58, 0.4, 0.74],
     [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.5, 0.5, 0.5], [0.74, 0.74, 0.13], [0.09, 0.75, 0.81]]
)


def _palette(n: int) -> Tensor:
    """``n`` colours: the palette's, again from its start past its tenth."""
    return _PALETTE[torch.arange(n) % len(_PALETTE)]


def confusion_matrix(predicted: Tensor, actual: Tensor, num_classes: int) -> Tensor:
    """counts[i, j]: examples of class i predicted as class j."""
    flat = actual.long().cpu() * num_classes + predicted.long().cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_matrix_markdown(matrix: Tensor, class_names: list[str]) -> str:
    header = "| actual \\ predicted | " + " | ".join(class_names) + " |"
    rule = "|---" * (len(class_names) + 1) + "|"
    rows = [f"| **{name}** | " + " | ".join(str(int(v)) for v in row) + " |" for name, row in zip(class_names, matrix)]
    return "\n".join([header, rule, *rows])


def confusion_matrix_image(matrix: Tensor, class_names: list[str], cell: int = 40) -> Tensor:
    """Each row normalized (dark blue on the diagonal: the class is recognized), each cell's count written
    in it, the classes along both axes, titled "actual" (rows) and "predicted" (columns)."""
    counts = matrix.tolist()
    n = len(counts)
    left, top = max(56, 8 * max(len(name) for name in class_names) + 16), 44
    image, draw = _drawable((left + n * cell + 8, top + n * cell + 8))
    for i, row in enumerate(counts):
        total = max(sum(row), 1)
        for j, value in enumerate(row):
            shade = 1.0 - value / total
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(round(255 * shade), round(255 * (0.35 + 0.65 * shade)), 255))
            _write(image, (x + cell // 2, y + cell // 2), str(value), "mm", WHITE if shade < 0.5 else BLACK)
    for i, name in enumerate(class_names):
        middle = i * cell + cell // 2
        _write(image, (left + middle, top - 6), name, "ms")
        _write(image, (left - 6, top + middle), name, "rm")
    _write(image, (left + n * cell // 2, 4), "predicted", "mt")
    _write(image, (left - 6, top - 6), "actual", "rs")
    return tensor_of(image)


def pil_image(picture: Tensor):
    """A [C, H, W] picture (float in [0, 1], or uint8) as a PIL image: grey for one channel, else RGB(A)."""
    from PIL import Image  # only runs that draw pictures pay for the import

    pixels = uint8_pixels(picture)
    return Image.fromarray((pixels[0] if pixels.shape[0] == 1 else pixels.permute(1, 2, 0)).contiguous().numpy())


def uint8_pixels(picture: Tensor) -> Tensor:
    """A [C, H, W] picture (float in [0, 1], or uint8) as uint8 on the CPU."""
    pixels = picture.detach().cpu()
    if pixels.dtype != torch.uint8:
        # + 0.5 and truncation rounds as round() does (but at exact halves): 5x faster than round() on a CPU.
        pixels = pixels.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return pixels


def _drawable(canvas: Tensor | tuple[int, int]):
    """A PIL image of a CHW picture (or a white one of this width and height) and a pen on it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", canvas, "white") if isinstance(canvas, tuple) else pil_image(canvas)
    return image, ImageDraw.Draw(image)


BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def _write(image, xy: tuple[int, int], text: str, anchor: str, colour: tuple[int, int, int] = BLACK) -> None:
    """``text`` at ``xy`` (Pillow's anchors: "mm" centred, "rm" right-middle, ...) in Pillow's own font, 13 px."""
    mask, left, top = _lettering(text, anchor)
    image.paste(colour, (xy[0] + left, xy[1] + top), mask)


@functools.lru_cache(maxsize=4096)
def _lettering(text: str, anchor: str):
    """``text`` as a coverage mask and its offset from the anchor point: drawn once, then pasted wherever it
    recurs (counts, class names, labels, at every check), several times cheaper than drawing it each time."""
    return _number_lettering(text, anchor) if len(text) > 1 and text.isdigit() else _drawn(text, anchor)


def _drawn(text: str, anchor: str):
    from PIL import Image, ImageDraw

    font = _font()
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, anchor=anchor)
    return mask, left, top


def _number_lettering(number: str, anchor: str):
    """A number's digits' masks side by side: Pillow's own drawing of it (tested), since the font's digits are
    boxes of one width with their ink inside, placed a box apart. A confusion matrix's counts are mostly new
    strings, ~0.3 ms each to lay out and draw whole; this costs ~0.02 ms."""
    from PIL import Image

    glyphs = [_lettering(digit, anchor) for digit in number]
    first, left, top = glyphs[0]
    if first.width != _font().getlength(number[0]) or any((mask.size, x, y) != (first.size, left, top) for mask, x, y in glyphs):
        return _drawn(number, anchor)  # a font whose digits differ
    mask = Image.new("L", (first.width * len(number), first.height))
    for index, (glyph, _, _) in enumerate(glyphs):
        mask.paste(glyph, (index * first.width, 0))
    return mask, left * len(number), top


@functools.cache
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=13)


def tensor_of(image) -> Tensor:
    """An RGB PIL image as a [3, H, W] uint8 picture (its pixels as they are: no arithmetic)."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def decision_boundary_image(
    probabilities: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, size: int = 240, margin: float = 0.5
) -> Tensor:
    """Predicted class regions over the data's 2-D range, with the points drawn on top."""
    low = x.min(dim=0).values - margin
    high = x.max(dim=0).values + margin
    grid = torch.empty(size, size, 2, device=x.device)  # (x, y) of each pixel; image rows go down
    grid[..., 0] = torch.linspace(float(low[0]), float(high[0]), size, device=x.device)
    grid[..., 1] = torch.linspace(float(high[1]), float(low[1]), size, device=x.device)[:, None]
    p = probabilities(grid.view(-1, 2)).float().cpu()
    p = torch.stack([1 - p, p]) if p.dim() == 1 else p.T  # [classes, pixels]
    palette = _palette(p.shape[0])
    region_colors = 0.6 + 0.4 * palette  # pale versions
    image = (region_colors.T @ p).reshape(3, size, size)  # [3, pixels] as it comes: no transposed copy

    cols = ((x[:, 0].cpu() - low[0].cpu()) / (high[0] - low[0]).cpu() * (size - 1)).round().long()
    rows = ((high[1].cpu() - x[:, 1].cpu()) / (high[1] - low[1]).cpu() * (size - 1)).round().long()
    colors = palette[y.cpu()]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r = (rows + dr).clamp(0, size - 1)
            c = (cols + dc).clamp(0, size - 1)
            image[:, r, c] = colors.T
    return image.clamp(0, 1)


def image_grid(images: Tensor, columns: int = 8, scale: int = 4, pad: int = 1, labels: list[str] | None = None) -> Tensor:
    """(N, C, H, W) images, each stretched to [0, 1] on its own, in a grid; enlarged ``scale`` times; each
    with its label written under it when ``labels`` are given."""
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    images = (images - low) / (high - low).clamp(min=1e-8)
    images = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    n, c, h, w = images.shape
    rows = -(-n // columns)
    below = 16 if labels else 0
    canvas = torch.ones(c, rows * (h + below + pad) + pad, columns * (w + pad) + pad)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        top, left = pad + r * (h + below + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = image
    if not labels:
        return canvas
    picture, _ = _drawable(canvas)
    for i, label in enumerate(labels):
        r, k = divmod(i, columns)
        _write(picture, (pad + k * (w + pad) + w // 2, pad + r * (h + below + pad) + h + 2), label, "mt")
    return tensor_of(picture)


def line_plot(series: list[Tensor], width: int = 600, height: int = 200, names: list[str] | None = None) -> Tensor:
    """Series of equal length drawn as connected lines (colors in palette order) on a white canvas, with a
    legend when ``names`` are given."""
    values = torch.stack([s.detach().float().cpu() for s in series])
    low, high = float(values.min()), float(values.max())
    span = max(high - low, 1e-8)
    canvas = torch.ones(3, height, width)
    columns = np.linspace(0, width - 1, values.shape[1])
    for line, color in zip(values, _palette(len(values))):
        rows = np.interp(np.arange(width), columns, ((high - line) / span * (height - 5) + 2).numpy()).round().astype(int)
        for col in range(width):  # a vertical run from the previous column's row keeps the line unbroken
            top, bottom = sorted((rows[col], rows[max(col - 1, 0)]))
            canvas[:, top : bottom + 2, col] = color[:, None]
    return _with_legend(canvas, names)


def scatter(
    groups: list[Tensor], low: Tensor | None = None, high: Tensor | None = None, size: int = 300, names: list[str] | None = None
) -> Tensor:
    """2-D point clouds (colors in palette order, later groups on top) on a white canvas, with a legend
    when ``names`` are given."""
    every = torch.cat([g.detach().float().cpu() for g in groups])
    low = every.min(0).values - 0.3 if low is None else low
    high = every.max(0).values + 0.3 if high is None else high
    canvas = torch.ones(3, size, size)
    for points, color in zip(groups, _palette(len(groups))):
        points = points.detach().float().cpu()
        inside = ((points >= low) & (points <= high)).all(1)
        points = points[inside]
        cols = ((points[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long()
        rows = ((high[1] - points[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long()
        canvas[:, rows, cols] = color[:, None]
    return _with_legend(canvas, names)


def _with_legend(canvas: Tensor, names: list[str] | None) -> Tensor:
    """A box in the top left corner: each name beside a square of its palette colour."""
    if not names:
        return canvas
    box = _legend(tuple(names))
    canvas = canvas.clone()
    canvas[:, 4 : 4 + box.shape[1], 4 : 4 + box.shape[2]] = box[:, : canvas.shape[1] - 4, : canvas.shape[2] - 4]
    return canvas


@functools.lru_cache(maxsize=64)
def _legend(names: tuple[str, ...]) -> Tensor:
    """The legend box alone, drawn once per set of names (a picture at every check shows the same one)."""
    picture, draw = _drawable((31 + 8 * max(len(name) for name in names), 5 + 16 * len(names)))
    draw.rectangle((0, 0, picture.width - 1, picture.height - 1), fill="white", outline=(150, 150, 150))
    for index, (name, colour) in enumerate(zip(names, _palette(len(names)).tolist())):
        colour = tuple(int(255 * v) for v in colour)
        draw.rectangle((6, 6 + 16 * index, 16, 16 + 16 * index), fill=colour)
        _write(picture, (22, 11 + 16 * index), name, "lm")
    return tensor_of(picture).float() / 255  # pasted onto float canvases
