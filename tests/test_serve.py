"""``fashion-lightning serve``: a real server on a loopback port, real HTTP clients, and a real browser."""

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fashion_lightning import raw_files, sources
from fashion_lightning.cli import cli_main
from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.export import export
from fashion_lightning.tiny_fashion import write_tiny_fashion
from tests.helpers import cli_args, free_port, png_bomb

pytest.importorskip("litserve")


def request(port: int, method: str, path: str, body=None, timeout: float = 30):
    """(status, decoded JSON or text) of one HTTP request to the server on 127.0.0.1:port."""
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


class Server:
    """``fashion-lightning serve SOURCE`` in a subprocess; ready once ``/health`` answers 200."""

    def __init__(self, source, *extra: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "fashion_lightning", "serve", str(source), f"--port={self.port}", *extra]
        # Its own process group: stop() reaches LitServe's worker processes too, whatever happens to the parent.
        # SIGINT at its default, as in a terminal: a shell starts a background job (a CI script's, say) with SIGINT
        # ignored, and Python then keeps it ignored, so Ctrl-C would not reach the server's main process.
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.process.stdout.read()
            assert time.monotonic() < deadline, "the server did not become healthy in 120 s"
            try:
                if request(self.port, "GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)  # the server shuts its workers down on SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        self.process.wait()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short fit on the tiny fixture (module-wide: one training for all the server tests)."""
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as patch:  # like the `fashion` fixture, for the whole module
        source_dir, arrays = write_tiny_fashion(root, set_env=False)
        patch.setenv(raw_files.SPECS_ENV_VAR, str(root / "specs.json"))
        patch.delenv(sources.ENV_VAR, raising=False)
        patch.setattr(sources, "SYSTEM_COPY_DIRS", ())
        fashion = SimpleNamespace(root=root, source_dir=source_dir, data_dir=root / "data", logs=root / "logs")
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=6", "--model.lr=0.5")])
        fashion.checkpoint = fashion.logs / "fashion" / "version_0" / "checkpoints" / "best.ckpt"
        fashion.images = np.frombuffer(arrays["test_images"], dtype=np.uint8, offset=16).reshape(-1, 28, 28)
        fashion.labels = np.frombuffer(arrays["test_labels"], dtype=np.uint8, offset=8)
        yield fashion


@pytest.fixture(scope="module")
def server(trained):
    running = Server(trained.checkpoint, "--max_batch_size=64")  # batching on, as on a GPU (a CPU's default: off)
    yield running
    running.stop()


def png_base64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_health_and_page(server):
    assert request(server.port, "GET", "/health") == (200, "ok")
    status, html = request(server.port, "GET", "/")
    assert status == 200
    assert '<input id="file" type="file"' in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # no CDN: it works offline


def test_a_real_test_image_is_classified_as_its_label(server, trained):
    for index in range(3):
        status, answer = request(server.port, "POST", "/predict", {"image": png_base64(trained.images[index])})
        assert status == 200, answer
        top = answer["predictions"]
        assert len(top) == 3
        assert top[0]["label"] == CLASS_NAMES[trained.labels[index]]
        assert top[0]["index"] == int(trained.labels[index])
        assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]


def test_pixels_give_the_same_answer_as_the_image(server, trained):
    pixels = (trained.images[5] / 255.0).tolist()
    status, answer = request(server.port, "POST", "/predict", {"pixels": pixels, "return_input": True})
    assert status == 200
    assert answer["predictions"][0]["label"] == CLASS_NAMES[trained.labels[5]]
    assert np.allclose(answer["input"], trained.images[5] / 255.0, atol=1e-4)


BAD_REQUESTS = {
    "not JSON": (b"{this is not json", 400, "not valid JSON"),
    "not UTF-8": (base64.b64decode(png_base64(np.full((28, 28), 200, np.uint8))), 400, "not valid JSON"),
    "neither field": ({"picture": "x"}, 400, "exactly one of"),
    "no body": (b"", 400, "must be a JSON object with exactly one of"),
    "a list": ([1, 2], 400, "must be a JSON object with exactly one of"),
    "both fields": ({"image": "aGk=", "pixels": [[0.0]]}, 400, "exactly one of"),
    "not base64": ({"image": "%%% not base64 %%%"}, 400, "base64"),
    "not an image": ({"image": base64.b64encode(b"hello, world").decode()}, 400, "not a readable image"),
    "wrong pixel shape": ({"pixels": [[0.5] * 28] * 27}, 400, "28 rows of 28"),
    "ragged pixels": ({"pixels": [[0.5] * 28] * 27 + [[0.5]]}, 400, "28 rows of 28"),
    "pixels out of range": ({"pixels": [[2.0] * 28] * 28}, 400, "between 0 and 1"),
    "pixels not numbers": ({"pixels": [["a"] * 28] * 28}, 400, "pixels"),
    "pixels as strings of numbers": ({"pixels": [["0.5"] * 28] * 28}, 400, "'pixels.0.0': Input should be a valid"),
    "pixels as booleans": ({"pixels": [[True] * 28] * 28}, 400, "'pixels.0.0': Input should be a valid number"),
    "whole-number pixels": ({"pixels": [[2] * 28] * 28}, 400, "between 0 and 1"),
    "body too large": ({"image": "A" * (11 * 1024 * 1024)}, 413, "larger than"),
    "decompression bomb": ({"image": base64.b64encode(png_bomb(10_000, 10_000)).decode()}, 413, "too large"),
}


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/predict", 405), ("POST", "/classify", 404)])
def test_a_wrong_method_or_path_gets_a_json_error_that_names_the_routes(server, method, path, status):
    answer_status, answer = request(server.port, method, path, {"image": "aGk="})
    assert answer_status == status
    assert set(answer) == {"error"}
    assert "POST /predict" in answer["error"]


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_json_error_and_the_server_stays_up(server, trained, case):
    body, expected_status, phrase = BAD_REQUESTS[case]
    status, answer = request(server.port, "POST", "/predict", body)
    assert status == expected_status, answer
    assert set(answer) == {"error"}
    assert phrase in answer["error"]
    assert "object at 0x" not in answer["error"]  # no Python object's repr
    status, answer = request(server.port, "POST", "/predict", {"image": png_base64(trained.images[0])})
    assert status == 200  # still serving


def test_concurrent_requests_are_answered_each_with_its_own_result(server, trained):
    def ask(index: int):
        return index, request(server.port, "POST", "/predict", {"pixels": (trained.images[index] / 255.0).tolist()})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, [i % 40 for i in range(500)]))  # 500 requests from 16 clients
    assert all(status == 200 for _, (status, _) in answers)
    expected = {}  # the same image must get the same answer whichever batch it landed in
    for index, (_, answer) in answers:
        expected.setdefault(index, answer["predictions"])
        assert answer["predictions"][0]["label"] == expected[index][0]["label"]
        assert abs(answer["predictions"][0]["probability"] - expected[index][0]["probability"]) < 1e-4
    accuracy = np.mean([a["predictions"][0]["index"] == trained.labels[i] for i, (_, a) in answers])
    assert accuracy > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_an_export_is_served_like_the_checkpoint(trained, fmt):
    out = trained.root / f"export-{fmt}"
    written = export(str(trained.checkpoint), str(out), formats=[fmt], data_dir=str(trained.data_dir))
    running = Server(written[fmt])
    try:
        status, answer = request(running.port, "POST", "/predict", {"image": png_base64(trained.images[0])})
        assert status == 200
        assert answer["predictions"][0]["label"] == CLASS_NAMES[trained.labels[0]]
        assert request(running.port, "POST", "/predict", {"pixels": [[7.0]]})[0] == 400
    finally:
        running.stop()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_the_server_and_its_worker_processes_quietly(trained, stop):
    running = Server(trained.checkpoint)
    os.killpg(running.process.pid, stop)  # to the whole group, as a terminal's Ctrl-C or a service manager does
    try:
        output, _ = running.process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        running.stop()  # (no server left behind)
        raise
    assert running.process.returncode == 0
    assert "Traceback" not in output
    assert "WARNING" not in output
    batching = "batches of up to 64 requests" if torch.cuda.is_available() else "no batching"
    assert f"(POST /predict, GET /health; {batching})" in output  # the default: no batching on a CPU
    deadline = time.monotonic() + 30
    while True:  # the whole process group, LitServe's inference workers included, is gone
        try:
            os.killpg(running.process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "worker processes outlived the server"
        time.sleep(0.2)


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fashion_lightning", "serve", str(tmp_path / "nope.onnx")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "No model file at" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_it_cannot_listen_on_is_a_clear_error_before_anything_starts(trained, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        for port, said in ((99999, "--port must be between 1024 and 65535"), (busy_port, "Address already in use")):
            with pytest.raises(SystemExit) as exit_info:
                cli_main(["serve", str(trained.checkpoint), f"--port={port}"])
            assert exit_info.value.code == 2
            captured = capsys.readouterr()
            assert said in captured.err
            assert "Serving" not in captured.out  # (it once printed its address, then failed in LitServe)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_on_a_machine_without_it_is_a_clear_error_before_anything_starts(trained, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["serve", str(trained.checkpoint), "--accelerator=cuda", f"--port={free_port()}"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "no CUDA GPU" in captured.err
    assert "--accelerator cpu" in captured.err
    assert "Serving" not in captured.out


def chromium_driver():
    """Headless Debian chromium through its chromedriver (never Selenium's downloader: there is no network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.mark.slow
def test_the_page_classifies_an_uploaded_image_in_a_real_browser(server, trained, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    image_path = tmp_path / "test-image.png"
    Image.fromarray(trained.images[2]).save(image_path)
    browser = chromium_driver()
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        browser.find_element(By.ID, "file").send_keys(str(image_path))
        top1 = WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "top1")))
        assert top1.find_element(By.CLASS_NAME, "label").text == CLASS_NAMES[trained.labels[2]]
        assert len(browser.find_elements(By.CLASS_NAME, "prediction")) == 3
        assert browser.find_element(By.ID, "error").text == ""
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 1000
    finally:
        browser.quit()
