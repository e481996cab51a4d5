"""The default model says when it is not sure: calibration, the unsure reply, and how clients show it.

The models are the session's (trained by digits-train on 2,500 digits, so the
ensemble learnt its limits from only 250 held-out digits): the figures held
here are looser than the full model's in bench/results-confidence.json.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from bench.confidence import letters, near_blank, scribbles
from clients.connection import Connection, ConnectionOptions
from clients.inputs import Item
from clients.output import JsonWriter, Result, TableWriter, not_sure
from clients.prediction import Prediction
from digitserve.artifacts import find_manifests, load_estimator, read_manifest
from digitserve.confidence import Calibrated, expected_calibration_error
from digitserve.unsure import BLANK, REASONS, UNDECIDED


def _flagged(connection: Connection, images: np.ndarray, model: str = "") -> list[str]:
    return list(connection.predict(images, model).doubts)


@pytest.fixture
def connection(server):
    with Connection(ConnectionOptions(address=server.address, timeout=30)) as c:
        yield c


def test_calibration_lowers_the_expected_calibration_error_on_test_digits(trained_models, test_digits):
    manifests = {m.name: m for m in map(read_manifest, find_manifests(trained_models))}
    model = load_estimator(trained_models, manifests["ensemble"])
    assert isinstance(model[-1], Calibrated)
    images, labels = test_digits[0][:2000], test_digits[1][:2000]
    raw = model[-1].model.predict_proba(model[:-1].transform(images))
    calibrated = model.predict_proba(images)
    assert (calibrated.argmax(axis=1) == raw.argmax(axis=1)).all()  # a temperature never changes the answer
    assert expected_calibration_error(calibrated, labels) < 0.6 * expected_calibration_error(raw, labels)


def test_the_server_doubts_few_digits_and_most_non_digits(connection, test_digits):
    digits = _flagged(connection, test_digits[0][:1000])
    assert sum(map(bool, digits)) <= 0.08 * len(digits)
    assert set(digits) <= {"", *REASONS}
    blank = _flagged(connection, near_blank(100))
    assert blank.count(BLANK) >= 95
    assert sum(map(bool, _flagged(connection, scribbles(100)))) >= 70
    letter_images, _ = letters(font_limit=2)
    assert sum(map(bool, _flagged(connection, letter_images))) >= 0.4 * len(letter_images)


def test_models_without_calibration_never_doubt(connection):
    assert _flagged(connection, near_blank(5), model="svm") == [""] * 5


def test_the_cli_marks_a_doubted_answer_in_the_table_and_in_json():
    p = np.zeros(10, np.float32)
    p[[4, 9]] = 0.55, 0.45
    item = Item(source="four.png")
    table, js = io.StringIO(), io.StringIO()
    for writer in (TableWriter(table, top=0), JsonWriter(js, top=0)):
        writer.write(Result(item, Prediction(p, UNDECIDED)))
        writer.write(Result(Item(source="sure.png"), Prediction(np.eye(10, dtype=np.float32)[7])))
        writer.close()
    doubted, sure = table.getvalue().splitlines()[1:]
    assert doubted.split()[0] == "4?" and doubted.endswith("four.png  (not sure: 4 or 9?)")
    assert sure.split()[0] == "7" and "not sure" not in sure
    records = json.loads(js.getvalue())
    assert records[0]["unsure"] is True and records[0]["unsure_reason"] == UNDECIDED
    assert records[1]["unsure"] is False and "unsure_reason" not in records[1]


def test_not_sure_names_the_two_likeliest_digits_or_the_reason():
    p = np.full(10, 0.01)
    p[[3, 5]] = 0.5, 0.42
    assert not_sure(p, UNDECIDED) == "not sure: 3 or 5?"
    assert not_sure(p, BLANK) == f"not sure: {BLANK}"
