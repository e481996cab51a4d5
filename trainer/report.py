"""Pictures of an evaluation: the confusion matrix and the most confident mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitserve.contract import CLASSES, IMAGE_SIDE

_FONT = ImageFont.load_default()


def confusion_png(confusion: list[list[int]], title: str, path: Path) -> Path:
    """A 10x10 heat map, true digit down, predicted digit across, counts written in."""
    matrix = np.asarray(confusion)
    cell, margin = 44, 60
    size = margin + len(CLASSES) * cell + 10
    image = Image.new("RGB", (size, size + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black", font=_FONT)
    draw.text((margin, 28), "predicted ->", fill="black", font=_FONT)
    draw.text((4, margin - 14), "true", fill="black", font=_FONT)
    off_diagonal = matrix * (1 - np.eye(len(CLASSES), dtype=matrix.dtype))
    worst = max(int(off_diagonal.max()), 1)
    for t in CLASSES:
        draw.text((margin - 18, margin + t * cell + cell // 2 - 6), str(t), fill="black", font=_FONT)
        draw.text((margin + t * cell + cell // 2 - 3, margin - 16), str(t), fill="black", font=_FONT)
        for p in CLASSES:
            count = int(matrix[t, p])
            if t == p:
                colour = (200, 230, 200)
            else:
                heat = count / worst
                colour = (255, int(255 - 180 * heat), int(255 - 200 * heat))
            x, y = margin + p * cell, margin + t * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour, outline=(220, 220, 220))
            if count:
                draw.text((x + 6, y + cell // 2 - 6), str(count), fill="black", font=_FONT)
    image.save(path)
    return path


def mistakes_png(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, title: str,
                 path: Path, count: int = 24) -> Path:
    """The misclassified test digits the model was surest about, captioned true → predicted."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    scale, columns = 3, 8
    tile_w, tile_h = IMAGE_SIDE * scale + 8, IMAGE_SIDE * scale + 22
    rows = max(1, -(-len(wrong) // columns))
    image = Image.new("RGB", (columns * tile_w + 8, rows * tile_h + 28), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), f"{title}: {len(wrong)} most confident mistakes (true -> predicted, confidence)",
              fill="black", font=_FONT)
    for slot, i in enumerate(wrong):
        x, y = 8 + (slot % columns) * tile_w, 24 + (slot // columns) * tile_h
        digit = Image.fromarray(255 - images[i].reshape(IMAGE_SIDE, IMAGE_SIDE)).resize((IMAGE_SIDE * scale, IMAGE_SIDE * scale), Image.NEAREST)
        image.paste(digit, (x, y))
        caption = f"{labels[i]}->{predicted[i]} {probabilities[i, predicted[i]]:.2f}"
        draw.text((x, y + IMAGE_SIDE * scale + 4), caption, fill="black", font=_FONT)
    image.save(path)
    return path
