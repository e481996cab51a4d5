"""The default model says when it is not sure: calibration, the unsure reply, and how clients show it.

The models are the session's (trained by digits-train on 2,500 digits, so the
ensemble learnt its limits from only 250 held-out digits, about 25 of each, and
doubts about 8% of the MNIST test digits): the figures held here are looser
than the full model's in bench/results-confidence.json, which the slow
training test holds.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from bench.confidence import DIGIT_SHAPED, letters, near_blank, scribbles
from clients.connection import Connection, ConnectionOptions
from clients.inputs import Item
from clients.output import JsonWriter, Result, TableWriter, not_sure
from clients.prediction import Prediction
from digitserve.artifacts import find_manifests, load_estimator, read_manifest
from digitserve.confidence import (Calibrated, assess, average_networks, expected_calibration_error, fold_network,
                                   network_output)
from digitserve.unsure import BLANK, REASONS, UNDECIDED


def assert_full_model_flags(ensemble, test_images: np.ndarray) -> None:
    """The flagging figures of an ensemble trained on all 60,000 digits, on smaller samples.

    The slow training test calls it; bench/results-confidence.json has the whole sets
    (1.41% of MNIST test digits, 92.5% of scribbles, 91.8% of letters and 98.9% of
    those not written as a digit is, 100% of near-blank). On these samples: 1.30%,
    94.7%, 94.2% and 100%, 100%. The letters' target, at least 90%, was missed
    (83.7%) until the judge of shapes learnt printed capitals and became the mean
    of several networks.
    """
    def share(images):
        return float(np.mean([bool(d) for d in assess(ensemble, images)[1]]))

    assert share(test_images[:2000]) <= 0.02
    assert share(near_blank(100)) == 1.0
    assert share(scribbles(300)) >= 0.9
    assert share(letters(font_limit=4)[0]) >= 0.9
    assert share(_letters_not_digit_shaped(font_limit=4)) >= 0.95


def _flagged(connection: Connection, images: np.ndarray, model: str = "") -> list[str]:
    return list(connection.predict(images, model).doubts)


def _letters_not_digit_shaped(font_limit: int) -> np.ndarray:
    """The fonts' capitals but I, O, S and Z, which are written as 1, 0, 5 and 2 are."""
    images, names = letters(font_limit=font_limit)
    return images[[name not in DIGIT_SHAPED for name in names]]


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


@pytest.fixture(scope="module")
def ensemble(trained_models):
    model = load_estimator(trained_models, read_manifest(trained_models / "ensemble.manifest.json"))
    assert isinstance(model[-1], Calibrated)
    return model


@pytest.mark.parametrize("batch", [1, 7, 100], ids=["one", "small batch", "large batch"])
def test_one_pass_answers_and_doubts_exactly_as_two_passes(ensemble, test_digits, batch):
    # Digits and non-digits alike, so that some answers are doubted for each reason.
    images = np.concatenate([test_digits[0][:60], scribbles(30), near_blank(10), letters(font_limit=1)[0]])
    images = images[np.random.default_rng(0).permutation(len(images))]
    flagged = 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        probabilities, doubts = assess(ensemble, chunk)
        expected = ensemble.predict_proba(chunk)  # scikit-learn's VotingClassifier, each member on its own
        np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
        assert doubts == ensemble[-1].doubts(ensemble[:-1].transform(chunk), expected)
        flagged += sum(map(bool, doubts))
    assert 0 < flagged < len(images)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # any fitted network will do
def test_the_folded_judge_of_shapes_answers_as_scikit_learns_network():
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(400, 12))
    y = (x[:, 0] * x[:, 1] > 9).astype(int)
    scaler = StandardScaler().fit(x)
    net = MLPClassifier((16,), max_iter=100, random_state=0).fit(scaler.transform(x), y)
    np.testing.assert_allclose(network_output(fold_network(scaler, net), x.astype(np.float32)),
                               net.predict_proba(scaler.transform(x))[:, 1], rtol=1e-4, atol=1e-5)
    # Several networks folded into one answer the logistic of the mean of their logits.
    nets = [net, MLPClassifier((8,), max_iter=100, random_state=1).fit(scaler.transform(x), y)]
    logits = np.mean([np.log(n.predict_proba(scaler.transform(x))[:, 1]) - np.log(n.predict_proba(
        scaler.transform(x))[:, 0]) for n in nets], axis=0)
    np.testing.assert_allclose(network_output(average_networks([fold_network(scaler, n) for n in nets]),
                                              x.astype(np.float32)), 1 / (1 + np.exp(-logits)), rtol=1e-4, atol=1e-5)


def test_the_server_doubts_few_digits_and_most_non_digits(connection, test_digits):
    digits = _flagged(connection, test_digits[0][:1000])
    assert sum(map(bool, digits)) <= 0.12 * len(digits)
    assert set(digits) <= {"", *REASONS}
    blank = _flagged(connection, near_blank(100))
    assert blank.count(BLANK) >= 95
    assert sum(map(bool, _flagged(connection, scribbles(100)))) >= 88
    letter_images, _ = letters(font_limit=2)
    assert sum(map(bool, _flagged(connection, letter_images))) >= 0.75 * len(letter_images)
    other_letters = _letters_not_digit_shaped(font_limit=2)
    assert sum(map(bool, _flagged(connection, other_letters))) >= 0.85 * len(other_letters)


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
