"""digits-train: data checks, downloads, atomic artifacts, evaluation and the accuracy targets."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from digitserve.artifacts import ArtifactError, find_manifests, load_estimator, read_manifest
from digitserve.idx import write_idx
from tests.conftest import QUICK_TRAINING, ROOT, TRAIN_LIMIT
from trainer.main import main as train
from trainer.mnist import FILES, MnistError, load_mnist


@pytest.fixture
def mnist_copy(mnist_dir, tmp_path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for spec in FILES.values():
        shutil.copyfile(mnist_dir / spec.name, folder / spec.name)
    return folder


def _rewrite(path: Path, change) -> None:
    with gzip.open(path) as f:
        data = bytearray(f.read())
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(change(data))


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.unlink(), ["t10k-labels-idx1-ubyte.gz", "missing"]),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), ["t10k-labels-idx1-ubyte.gz", "gzip"]),
    (lambda p: _rewrite(p, lambda d: b"\x00\x00\x08\x03" + bytes(d[4:])), ["magic number 2051", "expected 2049"]),
    (lambda p: _rewrite(p, lambda d: d[:8] + bytes([(d[8] + 1) % 10]) + d[9:]), ["sha256", "damaged"]),
    (lambda p: _rewrite(p, lambda d: d[:-10]), ["announces", "10008", "9998"]),
    (lambda p: _rewrite(p, lambda d: bytes(d[:4]) + (5).to_bytes(4, "big") + bytes(d[8:13])),
     ["shape is (5,)", "expected (10000,)"]),
])
def test_damaged_mnist_files_are_named_with_what_is_wrong(mnist_copy, damage, words):
    damage(mnist_copy / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(MnistError) as caught:
        load_mnist(mnist_copy, progress=False)
    for word in words:
        assert word in str(caught.value)


def test_the_trainer_exits_5_with_one_line_on_bad_data(mnist_copy, tmp_path, capsys):
    (mnist_copy / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    assert train(["--mnist-dir", str(mnist_copy), "--out", str(tmp_path / "out"), "--limit", "100"]) == 5
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("digits-train: ") and "train-images-idx3-ubyte.gz" in error
    assert not (tmp_path / "out").exists()


class _Mirror(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def mirrors(mnist_dir, tmp_path_factory):
    """Three loopback mirrors: one that is down, one serving corrupt files, one good."""
    good, bad = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("bad")
    for spec in FILES.values():
        shutil.copyfile(mnist_dir / spec.name, good / spec.name)
        zeros = np.zeros(spec.shape, np.uint8)  # the right header, the wrong content
        write_idx(bad / spec.name, zeros)
    servers = []
    for folder in (bad, good):
        handler = lambda *a, folder=folder, **k: _Mirror(*a, directory=str(folder), **k)  # noqa: E731
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # Polled often for the stop: the default half second was most of each test's time.
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
    down = "http://127.0.0.1:9/"
    urls = [down] + [f"http://127.0.0.1:{s.server_address[1]}/" for s in servers]
    yield urls
    for s in servers:
        s.shutdown()


def test_download_tries_the_next_mirror_and_verifies_content(mirrors, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITS_MNIST_MIRRORS", ",".join(mirrors))
    monkeypatch.setenv("DIGITS_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(None, progress=False)
    assert data.train_images.shape == (60000, 784) and data.test_labels.shape == (10000,)
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(s.name for s in FILES.values())
    again = load_mnist(None, progress=False)  # from the cache, no mirror needed
    assert np.array_equal(again.test_images, data.test_images)


def test_offline_download_fails_clearly(mirrors, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITS_MNIST_MIRRORS", ",".join(mirrors[:2]))
    monkeypatch.setenv("DIGITS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(MnistError) as caught:
        load_mnist(None, progress=False)
    message = str(caught.value)
    assert "could not download" in message and "127.0.0.1:9" in message and "sha256" in message
    assert "--mnist-dir" in message
    assert not list((tmp_path / "cache" / "mnist").glob("*.gz"))


def test_training_writes_verified_artifacts_with_evaluations(trained_models, test_digits):
    manifests = {read_manifest(p).name: read_manifest(p) for p in find_manifests(trained_models)}
    assert sorted(manifests) == ["ensemble", "knn", "rf", "svm"]
    images, labels = test_digits
    for name, manifest in manifests.items():
        evaluation = manifest.evaluation
        assert len(evaluation["per_class_recall"]) == 10 and len(evaluation["confusion"]) == 10
        assert sum(map(sum, evaluation["confusion"])) == evaluation["test_samples"] == TRAIN_LIMIT
        assert evaluation["fit_seconds"] >= 0 and evaluation["single_image_ms"] > 0
        assert manifest.training_samples == TRAIN_LIMIT and manifest.libraries["scikit-learn"]
        model = load_estimator(trained_models, manifest)
        accuracy = (model.predict_proba(images[-1000:]).argmax(axis=1) == labels[-1000:]).mean()
        assert abs(accuracy - manifest.test_accuracy) < 0.03, name
    assert set(manifests["ensemble"].evaluation["voting"]) == {"hard", "soft"}
    assert manifests["ensemble"].members == ["knn", "svm", "rf"]
    summary = json.loads((trained_models / "training-summary.json").read_text())
    assert [row["name"] for row in summary] == ["knn", "svm", "rf", "ensemble"]


@pytest.mark.heavy
def test_training_is_reproducible_with_a_seed(mnist_dir, tmp_path):
    runs = []
    for out in ("a", "b"):
        assert train(["--mnist-dir", str(mnist_dir), "--out", str(tmp_path / out), "--models", "rf",
                      "--limit", "1000", "--seed", "7", "--jobs", "1", "--no-report"]) == 0
        runs.append(read_manifest(tmp_path / out / "rf.manifest.json"))
    assert runs[0].evaluation["confusion"] == runs[1].evaluation["confusion"]


def test_reports_are_pictures(mnist_dir, tmp_path):
    from PIL import Image

    assert train(["--mnist-dir", str(mnist_dir), "--out", str(tmp_path), "--models", "knn",
                  "--limit", "800", "--jobs", "1"]) == 0
    for name in ("knn-confusion.png", "knn-mistakes.png"):
        with Image.open(tmp_path / "reports" / name) as picture:
            assert picture.size[0] > 300 and picture.getextrema() != ((255, 255), (255, 255), (255, 255))


def test_an_interrupted_write_leaves_nothing_loadable_and_is_cleaned_up(trained_models, tmp_path, mnist_dir):
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    manifest = read_manifest(folder / "svm.manifest.json")
    # What a trainer killed mid-write leaves: a temporary file and an artifact no manifest names.
    half = (folder / manifest.artifact).read_bytes()[:5000]
    (folder / ".tmp-abc123").write_bytes(half)
    (folder / "svm-0123456789ab.joblib").write_bytes(half)
    assert [read_manifest(p).name for p in find_manifests(folder)] == ["ensemble", "knn", "rf", "svm"]
    assert load_estimator(folder, read_manifest(folder / "svm.manifest.json")) is not None
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(folder), "--models", "knn",
                  "--limit", "500", *QUICK_TRAINING]) == 0
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp") or p.name.startswith("svm-0123"))
    assert leftovers == []


@pytest.mark.heavy  # a training process, stopped
def test_ctrl_c_stops_training_with_one_line_and_the_folder_as_it_was(trained_models, tmp_path, mnist_dir):
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    # The child gets the default Ctrl-C whatever this process was given (a background job's is ignored).
    trainer = subprocess.Popen(
        [str(Path(sys.executable).parent / "digits-train"), "--mnist-dir", str(mnist_dir), "--out", str(folder),
         "--models", "svm,rf", "--limit", "5000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in trainer.stderr:  # fitting starts once the features are computed
        lines.append(line)
        if line.startswith("features:"):
            trainer.send_signal(signal.SIGINT)
            break
    lines.extend(trainer.stderr)
    assert trainer.wait(timeout=60) == 130
    assert lines[-1] == f"digits-train: interrupted; nothing in {folder} changed\n", "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_if_missing_skips_and_force_retrains(trained_models, tmp_path, mnist_dir):
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    before = read_manifest(folder / "knn.manifest.json").version
    args = ["--mnist-dir", str(mnist_dir), "--out", str(folder), "--models", "knn", "--limit", "500",
            *QUICK_TRAINING]
    assert train(args + ["--if-missing"]) == 0
    assert read_manifest(folder / "knn.manifest.json").version == before
    assert train(args + ["--if-missing", "--force", "--seed", "3"]) == 0
    assert read_manifest(folder / "knn.manifest.json").version != before


def test_notify_reloads_every_listed_server(serve, trained_models, tmp_path, mnist_dir):
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    replicas = [serve(folder), serve(folder)]
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(folder), "--models", "svm", "--limit", "600",
                  *QUICK_TRAINING, "--notify", ",".join(r.address for r in replicas)]) == 0
    from digitserve.v1 import digits_pb2 as pb
    for serving in replicas:
        listed = {m.name: m for m in serving.stub.ListModels(pb.ListModelsRequest()).models}
        assert listed["svm"].training_samples == 600


def test_notify_failure_is_exit_4_with_models_written(trained_models, tmp_path, mnist_dir):
    folder = tmp_path / "models"
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(folder), "--models", "knn", "--limit", "300",
                  *QUICK_TRAINING, "--notify", "127.0.0.1:9", "--retries", "0"]) == 4
    assert read_manifest(folder / "knn.manifest.json").name == "knn"


@pytest.mark.heavy
def test_notify_reaches_a_tls_server_with_the_token_as_call_credentials(serve, trained_models, tmp_path,
                                                                        mnist_dir):
    from tests.test_hardening import _certificates

    certs = _certificates(tmp_path)
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    serving = serve(folder, tls_cert=str(certs["server_cert"]), tls_key=str(certs["server_key"]), token="s3cret")
    quick = ["--mnist-dir", str(mnist_dir), "--out", str(folder), "--models", "knn", "--limit", "300",
             "--jobs", "1", "--no-report"]
    proc = subprocess.run([sys.executable, "-m", "trainer.main", *quick, "--notify", f"localhost:{serving.running.port}",
                           "--ca-cert", str(certs["ca"]), "--token", "s3cret"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "reload on localhost:" in proc.stderr and "updated 1" in proc.stderr
    refused = subprocess.run([sys.executable, "-m", "trainer.main", *quick, "--notify",
                              f"localhost:{serving.running.port}", "--ca-cert", str(certs["ca"]), "--token", "wrong"],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert refused.returncode == 3 and "DIGITS_TOKEN" in refused.stderr


def test_notify_refuses_to_send_the_token_in_clear_to_another_machine(capsys):
    from trainer.main import parse_args

    with pytest.raises(SystemExit) as caught:  # the arguments alone are refused: nothing is trained or sent
        parse_args(["--notify", "192.0.2.1:50051", "--token", "s3cret"])
    assert caught.value.code == 2
    assert "in clear to 192.0.2.1:50051" in capsys.readouterr().err


def _fill(folder: Path, leave: int) -> None:
    """Fill the file system holding ``folder`` until ``leave`` bytes are free."""
    import os

    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler").write_bytes(b"\0" * max(free - leave, 0))


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs (two sets of small models fit), so that a training run really meets a full disk."""
    import os

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.heavy
def test_a_full_disk_leaves_the_models_folder_as_it_was(small_disk, mnist_dir):
    folder = small_disk / "models"
    quick = [sys.executable, "-m", "trainer.main", "--mnist-dir", str(mnist_dir), "--out", str(folder),
             "--limit", "1000", "--jobs", "1", "--no-report"]
    assert subprocess.run(quick, capture_output=True, cwd=ROOT, timeout=300).returncode == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    artifacts = sum(read_manifest(p).size_bytes for p in find_manifests(folder))
    _fill(small_disk, artifacts // 2)  # room for the first models of the next run, not for all
    proc = subprocess.run(quick + ["--seed", "5"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 5
    message = proc.stderr.strip().splitlines()[-1]
    assert "No space left on device" in message and str(folder) in message and ".joblib" in message
    assert "nothing in" in message and "changed" in message and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no new file, no temporary file
    json.loads((folder / "training-summary.json").read_text())
    for path in find_manifests(folder):
        load_estimator(folder, read_manifest(path))
    (small_disk / "filler").unlink()
    assert subprocess.run(quick + ["--seed", "5"], capture_output=True, cwd=ROOT, timeout=300).returncode == 0
    versions = {read_manifest(p).name: read_manifest(p).sha256 for p in find_manifests(folder)}
    assert all(versions[name] != json.loads(before[f"{name}.manifest.json"])["sha256"] for name in versions)


def test_unknown_model_names_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        train(["--models", "knn,cnn"])
    assert caught.value.code == 2
    assert "cnn" in capsys.readouterr().err


@pytest.mark.parametrize("corrupt, reason", [
    (lambda d, m: (d / m.artifact).write_bytes(b"x" * m.size_bytes), "sha256"),
    (lambda d, m: (d / "svm.manifest.json").write_text("{"), "unreadable manifest"),
    (lambda d, m: (d / "svm.manifest.json").write_text(
        (d / "svm.manifest.json").read_text().replace(m.artifact, "../../etc/passwd")), "inside the models folder"),
])
def test_artifact_checks_refuse_tampering(trained_models, tmp_path, corrupt, reason):
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    manifest = read_manifest(folder / "svm.manifest.json")
    corrupt(folder, manifest)
    with pytest.raises(ArtifactError) as caught:
        load_estimator(folder, read_manifest(folder / "svm.manifest.json"))
    assert reason in str(caught.value)


# The committed full run the slow test holds later runs to, and by how much they may fall short:
# 0.2 points (20 of the 10,000 test digits) covers numeric libraries that round differently; a
# recipe change that moves an accuracy further updates tests/full-training.json with its own run.
FULL_RUN = ROOT / "tests" / "full-training.json"
ACCURACY_MARGIN = 0.002


@pytest.mark.slow
def test_the_default_set_meets_the_accuracy_targets(mnist_dir, tmp_path):
    """All 60,000 training images (and their styled copies), the default recipes, within ten minutes; then the targets."""
    import time

    started = time.perf_counter()
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(tmp_path), "--no-report"]) == 0
    elapsed = time.perf_counter() - started
    accuracy = {read_manifest(p).name: read_manifest(p).test_accuracy for p in find_manifests(tmp_path)}
    assert accuracy["ensemble"] >= 0.9937  # the target: at least the 99.37% of the models before the styles
    recorded = {row["name"]: row["accuracy"] for row in json.loads(FULL_RUN.read_text())["summary"]}
    assert set(recorded) == set(accuracy)
    for name, figure in recorded.items():
        assert accuracy[name] >= figure - ACCURACY_MARGIN, \
            f"{name}: {accuracy[name]:.2%}, where the committed full run reached {figure:.2%}"
    assert elapsed < 600
    total = sum(read_manifest(p).size_bytes for p in find_manifests(tmp_path))
    assert total <= 25e6
    # Digits as people draw them: MNIST test digits traced into mouse strokes at random sizes,
    # places and slants, rendered and preprocessed as the drawing client does.
    from tests.strokes import drawn_test_digits

    vectors, labels = drawn_test_digits()
    ensemble = load_estimator(tmp_path, read_manifest(tmp_path / "ensemble.manifest.json"))
    drawn = (ensemble.predict_proba(vectors).argmax(axis=1) == labels).mean()
    print(f"traced drawings recognised: {drawn:.1%}")
    assert drawn >= 0.96
    # The world's digit styles (tests/style_digits.py), which the default training adds.
    from tests.style_digits import styled_test_digits

    for style, (vectors, digit) in styled_test_digits(per_style=300).items():  # the set bench.styles reads
        read = (ensemble.predict(vectors) == digit).mean()
        print(f"{style}: {read:.0%}")
        assert read >= 0.95, style
    from tests.test_confidence import assert_full_model_flags

    assert_full_model_flags(ensemble, load_mnist(mnist_dir).test_images.reshape(-1, 784))
