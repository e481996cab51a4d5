"""digits predict / models / reload against a real server, with real files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitserve.idx import write_idx
from tests.conftest import ROOT, run_digits as run

BIN = Path(sys.executable).parent


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
    doubted = [line for line in lines if "(not sure: " in line]
    assert all(line.split()[0].endswith("?") for line in doubted)
    # Without the marks of a doubted answer: "4?" and "(not sure: 4 or 9?)".
    rows = [re.sub(r"  \(not sure: [^)]*\)", "", line).replace("?", "", 1).split() for line in lines if "#" in line]
    assert len(rows) == 500
    wrong = [row for row in rows if row[0] != row[2]]  # digit, confidence, label, [wrong], source
    assert wrong and all(row[3] == "wrong" for row in wrong)
    assert all(len(row) == 4 for row in rows if row[0] == row[2])
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


def test_npy_files_that_are_no_arrays_of_numbers_say_so_without_offering_to_unpickle(tmp_path):
    from clients.inputs import read_items

    (tmp_path / "random.npy").write_bytes(bytes(range(100)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    errors = [item.error for item in read_items([tmp_path / "random.npy", tmp_path / "objects.npy"])]
    assert errors == [f"{tmp_path / 'random.npy'}: not a .npy array (it does not start with NumPy's header)",
                      f"{tmp_path / 'objects.npy'}: holds Python objects, not an array of numbers"]


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


def test_models_on_a_server_without_any_says_how_to_get_some(serve, tmp_path, capsys):
    empty = serve(tmp_path)
    code, out, err = run(capsys, "models", "--server", empty.address)
    assert code == 0
    assert out == "" and "no models are loaded" in err and "digits-train" in err and "digits reload" in err
    code, out, err = run(capsys, "models", "--server", empty.address, "--format", "json")
    assert code == 0 and json.loads(out) == [] and "no models are loaded" in err


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


def test_unreachable_server_is_one_line_exit_4_without_traceback(tmp_path):
    picture = tmp_path / "x.png"
    Image.new("L", (28, 28), 0).save(picture)
    proc = subprocess.run([sys.executable, "-m", "clients.cli", "predict", "--server", "127.0.0.1:9",
                           "--retries", "1", "--timeout", "0.3", str(picture)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 4
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


def _digits(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    """digits as a user runs it: its own process."""
    return subprocess.run([str(BIN / "digits"), *argv], capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def many(test_digits, tmp_path) -> Path:
    path = tmp_path / "many.npy"
    np.save(path, test_digits[0][:3000])
    return path


def test_every_command_has_a_version_and_every_subcommand_a_description():
    for command in ("digits", "digits-server", "digits-train"):
        done = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.split()[0] == command and done.stdout.split()[1][0].isdigit()
    from clients.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"predict", "models", "reload", "draw"}
    for name, sub in commands.items():
        assert name in parser.format_help() and len(sub.description or "") > 40, name  # says what it does


@pytest.mark.heavy
def test_predict_honours_the_timeout_while_streaming(trained_models, many):
    """A server that stops answering mid-run (here: stopped by SIGSTOP) ends the run after --timeout."""
    import signal

    from bench.process import ServerProcess

    server = ServerProcess(trained_models)
    try:
        server.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        done = _digits("predict", "--server", server.address, "--timeout", "3", "--format", "csv", str(many))
        elapsed = time.monotonic() - started
    finally:
        server.proc.kill()
        server.proc.wait()
    assert done.returncode == 4, done.stderr
    assert "no answer within 3s" in done.stderr and "Traceback" not in done.stderr
    assert elapsed < 8


def test_a_client_certificate_without_its_key_is_a_usage_error(server, tmp_path, capsys):
    (tmp_path / "client.pem").write_text("not used")
    code, _, err = run(capsys, "models", "--server", server.address, "--ca-cert", str(tmp_path / "client.pem"),
                       "--client-cert", str(tmp_path / "client.pem"))
    assert code == 2  # not grpcio's abort
    assert err.strip().splitlines() == [
        "digits models: --client-cert needs --client-key too (a client certificate and its private key go together)"]


def test_the_token_is_not_sent_in_clear_to_another_machine():
    # In a network namespace of its own, so that even a client that tried could reach no other machine.
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -n (a private network namespace)")
    done = subprocess.run(["unshare", "-n", str(BIN / "digits"), "reload", "--server", "192.0.2.1", "--token", "secret"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "in clear to 192.0.2.1:50051" in done.stderr and "--ca-cert" in done.stderr and "--insecure" in done.stderr


def test_a_missing_or_wrong_token_says_how_to_give_one(serve, trained_models, capsys, monkeypatch):
    serving = serve(trained_models, token="right")
    monkeypatch.setenv("DIGITS_TOKEN", "")
    code, _, err = run(capsys, "reload", "--server", serving.address)
    assert code == 3
    assert "--token" in err and "DIGITS_TOKEN" in err and "metadata" not in err
    code, _, err = run(capsys, "reload", "--server", serving.address, "--token", "wrong")
    assert code == 3 and "--token" in err and "DIGITS_TOKEN" in err
    assert run(capsys, "reload", "--server", serving.address, "--token", "right")[0] == 0


def test_unreadable_local_files_are_exit_5_and_named(server, test_digits, tmp_path, capsys):
    write_idx(tmp_path / "t-images-idx3-ubyte", test_digits[0][:20].reshape(-1, 28, 28))
    (tmp_path / "labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00")
    code, out, err = run(capsys, "predict", "--server", server.address, "--labels",
                         str(tmp_path / "labels-idx1-ubyte"), str(tmp_path / "t-images-idx3-ubyte"))
    assert code == 5
    assert str(tmp_path / "labels-idx1-ubyte") in err and "refused" not in err and out == ""
    images = str(tmp_path / "t-images-idx3-ubyte")
    code, _, err = run(capsys, "predict", "--server", server.address, "--ca-cert", str(tmp_path / "ca.pem"), images)
    assert code == 5 and f"--ca-cert {tmp_path / 'ca.pem'}: cannot read it" in err
    code, _, err = run(capsys, "predict", "--server", server.address, "--output", str(tmp_path / "no" / "out.csv"),
                       images)
    assert code == 5 and str(tmp_path / "no" / "out.csv") in err


def test_empty_folders_and_skipped_files_are_warned_and_an_empty_run_fails(server, photo_folder, tmp_path,
                                                                           capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    code, _, err = run(capsys, "predict", "--server", server.address, str(empty), str(tmp_path / "notes"))
    assert code == 1
    assert f"{empty}: no images" in err
    assert "skipped 1 file(s)" in err and "readme.txt" in err
    assert "nothing to predict" in err
    mixed = tmp_path / "mixed"
    shutil.copytree(photo_folder / "7", mixed)
    (mixed / "scan-notes.pdf").write_bytes(b"%PDF")
    code, out, err = run(capsys, "predict", "--server", server.address, "--format", "json", str(mixed))
    assert code == 0 and len(json.loads(out)) == len(list((photo_folder / "7").iterdir()))
    assert "scan-notes.pdf" in err


def test_paths_from_standard_input_and_results_to_standard_output(server, photo_folder, capsys, monkeypatch):
    files = sorted(str(p) for p in (photo_folder / "3").iterdir())
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(files) + "\n"))
    done = run(capsys, "predict", "--server", server.address, "--format", "csv", "--output", "-", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["source"] for r in rows] == files
    assert sum(r["digit"] == "3" for r in rows) >= len(rows) - 1


def test_an_image_or_stroke_file_piped_into_standard_input_is_read(server, photo_folder, tmp_path):
    from clients.drawing import Drawing

    def piped(data: bytes, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "digits"), "predict", "--server", server.address, "--format", "json",
                               *flags, "-"], input=data, capture_output=True, timeout=60)

    seven = sorted((photo_folder / "7").iterdir())[0]
    done = piped(seven.read_bytes(), "--save-inputs", str(tmp_path / "seen"))
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)
    assert record["source"] == "<stdin>" and record["digit"] == 7
    assert [p.name for p in (tmp_path / "seen").iterdir()] == ["00000-stdin.png"]
    one = Drawing(280, 280, [[(140.0, 40.0), (141.0, 120.0), (142.0, 240.0)]])
    one.save(tmp_path / "one.json")
    done = piped((tmp_path / "one.json").read_bytes(), "--number")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["number"] == "1"
    # A damaged image is one named error, not a line of noise per chunk of bytes read as paths.
    done = piped(seven.read_bytes()[:60])
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "digits: <stdin>: not an image file (damaged or truncated: image file is truncated)"]


@pytest.mark.heavy  # seconds of paced input
def test_inputs_slower_to_read_than_the_servers_stream_patience_are_predicted(serve, trained_models, photo_folder):
    """Big photos can take longer to read than a server waits on a quiet stream; a chunk goes every second.

    Paths arrive on standard input 0.4 s apart for 4 s; the server cancels a stream quiet for 2 s.
    Chunks of --batch images alone sent the first one at the end, and the server had cancelled.
    """
    serving = serve(trained_models, stream_idle_timeout=2.0)
    files = sorted(str(p) for p in (photo_folder / "3").iterdir())[:10]
    cli = subprocess.Popen([str(BIN / "digits"), "predict", "--server", serving.address, "--format", "csv", "-"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for path in files:
            cli.stdin.write(path + "\n")
            cli.stdin.flush()
            time.sleep(0.4)
    except BrokenPipeError:  # it has given up: its error says why
        pass
    out, err = cli.communicate(timeout=60)  # closes standard input
    assert cli.returncode == 0, err
    assert [row["source"] for row in csv.DictReader(io.StringIO(out))] == files


def test_piping_into_head_ends_quietly(server, many):
    cli = subprocess.Popen([str(BIN / "digits"), "predict", "--server", server.address, "--batch", "100", str(many)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-n", "3"], stdin=cli.stdout, capture_output=True, timeout=60)
    cli.stdout.close()
    assert cli.wait(timeout=60) == 0
    assert cli.stderr.read() == b""
    assert len(head.stdout.splitlines()) == 3


def test_the_top_column_lines_up_and_runners_up_are_not_zero(server, many, capsys):
    done = run(capsys, "predict", "--server", server.address, "--top", "3", str(many))
    lines = done.stdout.splitlines()
    header, rows = lines[0], [line for line in lines if "#" in line]
    column = header.index("top")
    assert {row.index(str(many)) for row in rows} == {header.index("source")}  # the source starts in one column
    assert all(row[column].isdigit() and row[column + 1] == ":" for row in rows)
    assert "0.000" not in "".join(row[column:row.index(str(many))] for row in rows)
    assert any("<0.001" in row for row in rows)


def test_the_progress_bar_knows_its_total_and_never_mixes_with_the_results(server, test_digits, tmp_path):
    """On a terminal: a bar with the count and an ETA on stderr, and every result line intact."""
    import fcntl
    import pty
    import struct
    import termios

    many = tmp_path / "many.npy"
    np.save(many, test_digits[0][:1000])

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen([str(BIN / "digits"), "predict", "--server", server.address, "--batch", "20",
                             str(many)], stdout=secondary, stderr=secondary)
    os.close(secondary)
    screen = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        screen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(main)
    text = screen.decode()
    assert re.search(r"\d+/1000 \[\d\d:\d\d<\d\d:\d\d", text), text[:2000]  # the total and an ETA
    rows = [line.rsplit("\r", 1)[-1] for line in text.split("\n") if "many.npy#" in line]
    assert len(rows) == 1000
    assert not [row for row in rows if "img/s" in row or "predicting" in row]
