"""Photos and scans through ``digits predict`` (a real process) against a real server.

The pictures come from bench/photos.py, the generator ``make bench`` measures
at scale: MNIST test digits on made-up paper under lamps, shadows, grain,
blur, on a table, turned, tilted, JPEG'd and cluttered.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.photos import CONDITIONS, photos
from clients.inputs import saved_name
from clients.preprocessing import PreprocessingError, prepare, to_mnist
from digitserve import exits
from tests.conftest import Ran, run_digits

PER_CONDITION = 25


def predict(capsys, server, *args: str) -> Ran:
    return run_digits(capsys, "predict", "--server", server.address, *map(str, args))


@pytest.mark.heavy
def test_photos_are_read_as_well_as_the_digits_themselves(server, test_digits, tmp_path, capsys):
    tmp_path = tmp_path / "photos"
    images, labels = test_digits
    images, labels = images[:PER_CONDITION].reshape(-1, 28, 28), labels[:PER_CONDITION]
    tmp_path.mkdir()
    np.save(tmp_path / "mnist.npy", images)
    for condition in CONDITIONS:
        for i, picture in enumerate(photos(images, condition, seed=7)):
            folder = tmp_path / condition / str(labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(folder / f"{i}.png", compress_level=1)  # lossless all the same, twice as fast
    proc = predict(capsys, server, "--format", "json", "--model", "svm", tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    mnist = sum(r["digit"] == labels[r["index"]] for r in rows if r["source"].endswith("mnist.npy"))
    for condition in CONDITIONS:
        mine = [r for r in rows if Path(r["source"]).parts[-3] == condition]
        assert len(mine) == PER_CONDITION and not any("error" in r for r in mine), condition
        right = sum(r["digit"] == int(Path(r["source"]).parent.name) for r in mine)
        print(f"{condition}: {right}/{PER_CONDITION} (the digits themselves: {mnist})")
        assert right >= mnist - 2, condition


def test_save_inputs_writes_what_the_model_saw(server, test_digits, tmp_path, capsys):
    tmp_path = tmp_path / "inputs"
    tmp_path.mkdir()
    images = test_digits[0][:3].reshape(-1, 28, 28)
    pictures = list(photos(images[:2], "phone", seed=3))
    paths = [tmp_path / "lamp.jpg", tmp_path / "desk.png"]
    for path, picture in zip(paths, pictures):
        Image.fromarray(picture).save(path)
    np.save(tmp_path / "three.npy", images)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    saved = tmp_path / "seen"
    proc = predict(capsys, server, "--save-inputs", saved, *paths, tmp_path / "broken.png", tmp_path / "three.npy")
    assert proc.returncode == exits.FAILED and "broken.png" in proc.stderr
    names = sorted(p.name for p in saved.iterdir())
    assert names == ["00000-lamp.png", "00001-desk.png", "00003-three-0.png", "00004-three-1.png",
                     "00005-three-2.png"]
    for path, name in zip(paths, names):
        assert np.array_equal(np.asarray(Image.open(saved / name)).reshape(-1), prepare(path))
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(saved / f"0000{3 + i}-three-{i}.png")), images[i])


def test_saved_names_keep_input_order_and_index():
    from clients.inputs import Item

    assert saved_name(7, Item("scans/3/a.jpeg")) == "00007-a.png"
    assert saved_name(12, Item("t10k-images-idx3-ubyte.gz", index=11)) == "00012-t10k-images-idx3-ubyte-11.png"


def test_save_inputs_into_an_unwritable_place_is_a_clear_error(server, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    Image.fromarray(np.full((50, 50), 200, np.uint8)).save(tmp_path / "x.png")
    proc = predict(capsys, server, "--save-inputs", tmp_path / "file" / "seen", tmp_path / "x.png")
    assert proc.returncode == exits.LOCAL_FILE and "Traceback" not in proc.stderr and "file" in proc.stderr


@pytest.mark.parametrize("lamp", [0, 60], ids=["even", "lamp"])
def test_no_digit_error_says_what_was_looked_for_and_found(server, tmp_path, lamp, capsys):
    """A blank sheet (evenly lit, or under a lamp): the error names what it needed and what it saw, consistently."""
    rng = np.random.default_rng(lamp)
    paper = 200 - lamp * np.linspace(0, 1, 240)[None, :] + rng.normal(0, 3, (200, 240))
    path = tmp_path / "blank.png"
    Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).save(path)
    proc = predict(capsys, server, path)
    assert proc.returncode == exits.FAILED
    message = proc.stderr.strip().splitlines()[-1]
    found = re.search(r"looked for (?:dark|light) ink at least (\d+) of 255 (?:dark|light)er than the "
                      r"(?:paper|background).*differs from the (?:paper|background) by only (\d+)", message)
    assert found and str(path) in message, message
    needed, strongest = map(int, found.groups())
    assert strongest < needed


def test_clutter_at_the_edges_does_not_move_the_digit(test_digits):
    """A margin line, specks and a table edge around a digit: the digit comes out as if alone."""
    from tests.strokes import aligned_correlation

    digit = np.asarray(Image.fromarray(test_digits[0][0].reshape(28, 28)).resize((140, 140)), np.float64)
    clean = np.full((260, 240), 210.0)
    clean[60:200, 50:190] -= digit * (170 / 255)
    cluttered = clean.copy()
    cluttered[:, 8:11] = 90  # margin line
    cluttered[:, 225:] = 60  # the table
    for y, x in [(10, 30), (240, 200), (20, 210), (250, 40)]:
        cluttered[y : y + 3, x : x + 3] = 40  # specks
    assert aligned_correlation(to_mnist(cluttered.astype(np.uint8)), to_mnist(clean.astype(np.uint8))) > 0.98


def test_lighting_is_evened_out(test_digits):
    """The same digit under a lamp and a shadow reads like the evenly lit one."""
    from tests.strokes import aligned_correlation

    digit = np.asarray(Image.fromarray(test_digits[0][1].reshape(28, 28)).resize((140, 140)), np.float64)
    sheet = np.full((260, 240), 0.85)
    sheet[60:200, 50:190] -= digit / 255 * 0.7
    x = np.linspace(0, 1, 240)[None, :]
    lamp = 1 - 0.45 * x - 0.35 * (np.arange(260)[:, None] > 150)  # falloff and a hard-edged shadow
    even, lit = (np.clip(255 * sheet * light, 0, 255).astype(np.uint8) for light in (1.0, lamp))
    assert aligned_correlation(to_mnist(lit), to_mnist(even)) > 0.95
    with pytest.raises(PreprocessingError, match="no ink found"):
        to_mnist(np.clip(255 * 0.85 * lamp, 0, 255).astype(np.uint8))  # the lamp alone is no digit
