"""digits predict / models / reload against a real server, with real files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clients.cli import main as digits
from digitserve.idx import write_idx
from tests.conftest import ROOT


def run(capsys, *argv) -> tuple[int, str, str]:
    code = digits(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _variants(digit: np.ndarray, k: int) -> tuple[str, Image.Image]:
    """The same MNIST digit as people photograph or scan it: five different ways."""
    img = Image.fromarray(digit.reshape(28, 28))
    kind = k % 5
    if kind == 0:  # dark ink on white paper
        return "png", Image.fromarray(255 - digit.reshape(28, 28))
    if kind == 1:  # scaled up four times
        return "png", img.resize((112, 112), Image.BICUBIC)
    if kind == 2:  # off-centre on a larger canvas
        canvas = Image.new("L", (120, 90), 0)
        canvas.paste(img.resize((56, 56), Image.BICUBIC), (6, 30))
        return "png", canvas
    if kind == 3:  # grey paper, dark grey ink
        grey = 180 - (digit.reshape(28, 28).astype(np.float32) / 255 * 140)
        return "png", Image.fromarray(grey.astype(np.uint8)).resize((84, 84), Image.BILINEAR)
    return "jpg", Image.fromarray(255 - digit.reshape(28, 28)).resize((100, 100), Image.BICUBIC)  # JPEG


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, test_digits) -> Path:
    images, labels = test_digits
    folder = tmp_path_factory.mktemp("photos")
    for k in range(100):
        suffix, picture = _variants(images[k], k)
        (folder / str(labels[k])).mkdir(exist_ok=True)
        picture.convert("L").save(folder / str(labels[k]) / f"digit{k:03}.{suffix}", quality=90)
    return folder


def test_predict_recognises_real_image_files_in_a_labelled_folder(server, capsys, photo_folder):
    code, out, err = run(capsys, "predict", "--server", server.address, "--format", "json", str(photo_folder))
    assert code == 0, err
    records = json.loads(out)
    assert len(records) == 100
    assert all(set(r) >= {"source", "digit", "confidence", "probabilities", "label"} for r in records)
    assert [r["source"] for r in records] == sorted(r["source"] for r in records)
    correct = [r["digit"] == r["label"] for r in records]
    assert np.mean(correct) >= 0.9
    for kind in range(5):  # every kind of picture is recognised, not just the easy ones
        assert np.mean(correct[kind::5]) >= 0.8, kind
    assert "accuracy:" in err and "confusion matrix" in err


def test_predict_idx_with_labels_reports_accuracy_and_confusion(server, capsys, test_digits, tmp_path):
    images, labels = test_digits
    write_idx(tmp_path / "t-images-idx3-ubyte", images[:500].reshape(-1, 28, 28))
    write_idx(tmp_path / "t-labels-idx1-ubyte", labels[:500])
    code, out, _ = run(capsys, "predict", "--server", server.address, "--batch", "128",
                       "--labels", str(tmp_path / "t-labels-idx1-ubyte"), str(tmp_path / "t-images-idx3-ubyte"))
    assert code == 0
    lines = out.splitlines()
    assert len([line for line in lines if "#" in line]) == 500
    accuracy = float(next(line for line in lines if line.startswith("accuracy:")).split()[1].rstrip("%"))
    assert accuracy > 93
    assert lines[-11].split() == [str(d) for d in range(10)]


def test_predict_npy_arrays_as_csv_with_top_k(server, capsys, test_digits, tmp_path):
    images, labels = test_digits
    np.save(tmp_path / "flat.npy", images[:30])
    np.save(tmp_path / "square.npy", images[30:60].reshape(-1, 28, 28).astype(np.float32) / 255)
    out_file = tmp_path / "out.csv"
    code, _, _ = run(capsys, "predict", "--server", server.address, "--format", "csv", "--top", "3",
                     "--output", str(out_file), str(tmp_path / "flat.npy"), str(tmp_path / "square.npy"))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(rows) == 60
    assert [int(r["index"]) for r in rows[:3]] == [0, 1, 2]
    assert rows[0]["top1_digit"] == rows[0]["digit"] and rows[0]["top3_p"]
    digits_ = np.array([int(r["digit"]) for r in rows])
    assert (digits_ == labels[:60]).mean() > 0.9
    assert abs(sum(float(rows[0][f"p{d}"]) for d in range(10)) - 1) < 1e-3


def test_a_broken_file_is_reported_and_the_rest_are_predicted(server, capsys, photo_folder, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    good = sorted((photo_folder / "7").iterdir())[0]
    code, out, err = run(capsys, "predict", "--server", server.address, "--format", "json",
                         str(broken), str(good), str(tmp_path / "missing.png"))
    assert code == 1
    records = json.loads(out)
    assert [("error" in r) for r in records] == [True, False, True]
    assert str(broken) in records[0]["error"] and records[1]["digit"] == 7
    assert "no such file" in records[2]["error"]
    assert str(broken) in err


def test_a_stroke_file_gets_the_same_answer_as_its_drawing(server, capsys, tmp_path):
    from clients.drawing import Drawing

    one = Drawing(280, 280, [[(140.0, 40.0), (141.0, 120.0), (142.0, 240.0)]])
    one.save(tmp_path / "one.json")
    code, out, _ = run(capsys, "predict", "--server", server.address, "--format", "json", str(tmp_path / "one.json"))
    assert code == 0
    from digitserve.v1 import digits_pb2 as pb
    direct = server.stub.Predict(pb.PredictRequest(u8=one.to_vector().tobytes()))
    record = json.loads(out)[0]
    assert record["digit"] == direct.predictions[0].digit == 1
    assert record["probabilities"] == pytest.approx(list(direct.predictions[0].probabilities), abs=1e-5)


def test_models_as_json_and_table(server, capsys):
    code, out, _ = run(capsys, "models", "--server", server.address, "--format", "json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"ensemble", "knn", "rf", "svm"}
    assert rows["ensemble"]["default"] is True and rows["ensemble"]["kind"] == "ensemble"
    assert all({"name", "kind", "version", "default", "test_accuracy"} <= set(r) for r in rows.values())
    code, out, _ = run(capsys, "models", "--server", server.address)
    assert code == 0 and "* ensemble" in out and "knn,svm,rf" in out


def test_reload_shows_what_changed(server, capsys, models_copy):
    (models_copy / "rf.manifest.json").unlink()
    code, out, _ = run(capsys, "reload", "--server", server.address)
    assert code == 0
    assert out.splitlines()[0].startswith("removed   rf ")
    assert "default model: ensemble" in out


def test_unknown_model_is_refused_with_the_servers_reason(server, capsys, photo_folder):
    code, _, err = run(capsys, "predict", "--server", server.address, "--model", "nope", str(photo_folder))
    assert code == 3
    assert "NOT_FOUND" in err and "ensemble, knn, rf, svm" in err


def test_unreachable_server_is_one_line_exit_2_without_traceback(tmp_path):
    picture = tmp_path / "x.png"
    Image.new("L", (28, 28), 0).save(picture)
    proc = subprocess.run([sys.executable, "-m", "clients.cli", "predict", "--server", "127.0.0.1:9",
                           "--retries", "1", "--timeout", "3", str(picture)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0] and "digits-server" in lines[0]


def _peak_rss_kib(server, folder: Path, out: Path) -> int:
    """Run digits predict on a folder in a fresh process; its peak resident memory."""
    # VmHWM, not ru_maxrss: on Linux the latter carries over the parent's peak across exec.
    wrapper = ("import re, sys\nfrom clients.cli import main\ncode = main(sys.argv[1:])\n"
               "status = open('/proc/self/status').read()\n"
               "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", wrapper, "predict", "--server", server.address, "--model", "svm",
                           "--format", "json", "--output", str(out), str(folder)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1])


@pytest.mark.heavy
def test_memory_stays_bounded_however_many_images_a_folder_holds(server, test_digits, tmp_path):
    images = test_digits[0]
    small, large = tmp_path / "small", tmp_path / "large"
    for folder, count in ((small, 2000), (large, 20000)):
        for k in range(count):
            sub = folder / f"{k // 1000:02}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[k % 10000].reshape(28, 28)).save(sub / f"{k:05}.png", compress_level=0)
    small_rss = _peak_rss_kib(server, small, tmp_path / "small.json")
    large_rss = _peak_rss_kib(server, large, tmp_path / "large.json")
    assert len(json.loads((tmp_path / "large.json").read_text())) == 20000
    print(f"peak memory: {small_rss // 1024} MiB for 2,000 images, {large_rss // 1024} MiB for 20,000")
    assert large_rss - small_rss < 10 * 1024
