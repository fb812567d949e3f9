"""``fashion-lightning serve SOURCE``: an HTTP server (LitServe) for a checkpoint or an export, with a web page.

    POST /predict  {"image": "<base64 PNG/JPEG>"} or {"pixels": 28x28 floats in [0, 1]}
                   -> {"predictions": [{"label": "Ankle boot", "index": 9, "probability": 0.97}, ...]}
    GET  /health   200 "ok" once the model is loaded (503 before)
    GET  /         the page: pick, drop or draw an image; shows what the model saw and the top 3

Images go through ``image_to_tensor``, the function ``classify`` uses. Concurrent requests are batched by LitServe
(``--max_batch_size``, ``--batch_timeout``). A bad request gets a 4xx with ``{"error": "<one sentence>"}``;
request bodies are parsed as JSON only, never unpickled.
"""

import base64
import binascii
import io
import math
import multiprocessing
import os
import signal
import socket
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.errors import FashionLightningError
from fashion_lightning.inference import image_to_tensor
from fashion_lightning.model_files import load_predictor
from fashion_lightning.raw_files import IMAGE_SIZE

MAX_BODY_BYTES = 10 * 1024 * 1024  # a base64 photo of a few MB; more is refused with 413 before it is parsed
WHAT_TO_SEND = 'exactly one of "image" (base64 of a PNG or JPEG) or "pixels" (28x28)'

try:
    import litserve as ls
    from fastapi import HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, StrictFloat
    from starlette.exceptions import HTTPException as StarletteHTTPException  # FastAPI's 404, 405, unparsable body
except ImportError:  # the serve extra is not installed: `serve` says how to get it
    ls = None
    BaseModel, StrictFloat = object, float


class ServeError(FashionLightningError):
    """The server cannot start (missing package, unreadable model file)."""


class PredictRequest(BaseModel):
    """Exactly one of ``image`` (base64 of an image file) or ``pixels`` (28x28 values in [0, 1])."""

    image: str | None = None
    pixels: list[list[StrictFloat]] | None = None  # numbers only: pydantic would take "0.5" and true as floats
    return_input: bool = False  # also answer the 28x28 image the model saw (the page shows it)


def bad_request(message: str, status: int = 400) -> "HTTPException":
    return HTTPException(status_code=status, detail=message)


def decode_pixels(pixels: list[list[float]]) -> Tensor:
    shape_error = bad_request(f"'pixels' must be {IMAGE_SIZE} rows of {IMAGE_SIZE} numbers each.")
    try:
        values = torch.tensor(pixels, dtype=torch.float32)  # (28, 28); ragged rows raise ValueError
    except ValueError:
        raise shape_error from None
    if values.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise shape_error
    if not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise bad_request("'pixels' values must be numbers between 0 and 1 (0 is black, the background).")
    return values.unsqueeze(0)  # (1, 28, 28)


def decode_image(encoded: str) -> Tensor:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("'image' must be the base64 encoding of an image file (PNG, JPEG, ...).") from None
    try:
        return image_to_tensor(io.BytesIO(data))  # the same preprocessing as `classify`
    except ValueError as err:
        status = 413 if str(err).startswith("too large") else 400
        raise bad_request(f"The image cannot be used: {err}.", status) from None


class FashionAPI(ls.LitAPI if ls else object):
    """The model behind ``/predict``: decode and check each request, run batches, answer the top k classes.

    Args:
        source: A ``.ckpt``, ``.onnx`` or ``.pt2`` file.
        top_k: Classes per answer.
        max_batch_size: Requests run together at most (1: no batching).
        batch_timeout: Seconds to wait for a batch to fill.
    """

    def __init__(self, source: str, top_k: int = 3, max_batch_size: int = 64, batch_timeout: float = 0.002) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.source, self.top_k = source, min(top_k, len(CLASS_NAMES))

    def setup(self, device: str) -> None:
        if multiprocessing.parent_process() is not None:  # in LitServe's inference worker process
            # A terminal's Ctrl-C reaches every process of the group. The worker leaves the shutdown to the main
            # process, which ends it, instead of stopping mid-read of its queue with a KeyboardInterrupt traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.predictor = load_predictor(self.source, device)

    def decode_request(self, request: PredictRequest) -> dict:
        if (request.image is None) == (request.pixels is None):
            raise bad_request(f"Send JSON with {WHAT_TO_SEND}.")
        images = decode_image(request.image) if request.image is not None else decode_pixels(request.pixels)
        return {"images": images, "return_input": request.return_input}

    def batch(self, inputs: list[dict]) -> dict:
        return {"images": torch.stack([item["images"] for item in inputs]), "items": inputs}  # (B, 1, 28, 28)

    @torch.inference_mode()
    def predict(self, batch: dict) -> list[dict]:
        single = not isinstance(batch.get("items"), list)  # without batching LitServe passes one decoded item
        images = batch["images"].unsqueeze(0) if single else batch["images"]
        probabilities = self.predictor(images).float().softmax(dim=-1).cpu()  # (B, 10)
        items = [batch] if single else batch["items"]
        answers = [{"probabilities": p, "item": item} for p, item in zip(probabilities, items, strict=True)]
        return answers[0] if single else answers

    def unbatch(self, output: list[dict]) -> list[dict]:
        return output

    def encode_response(self, output: dict) -> dict:
        values, indices = output["probabilities"].topk(self.top_k)
        predictions = [
            {"label": CLASS_NAMES[i], "index": i, "probability": round(v, 6)}
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]
        answer = {"predictions": predictions}
        if output["item"]["return_input"]:
            answer["input"] = [[round(v, 4) for v in row] for row in output["item"]["images"][0].tolist()]
        return answer


def error_response(request, exc) -> "JSONResponse":
    """Every error as ``{"error": "<one sentence>"}`` with its status (FastAPI's default is ``{"detail": ...}``)."""
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "The request body is not valid JSON."}, status_code=400)
        where = ".".join(str(part) for part in first.get("loc", ())[1:])
        message = f"Bad request at '{where}': {first.get('msg', 'invalid value')}."
        if not where:  # no body, or one that is no JSON object (a list, a form upload)
            message = f"The request body must be a JSON object with {WHAT_TO_SEND}."
        return JSONResponse({"error": message}, status_code=400)
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "Internal server error"
    if status == 413 and detail == "Payload too large":
        detail = f"The request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB."
    elif status == 400 and detail == "There was an error parsing the body":  # FastAPI's, e.g. bytes not UTF-8
        detail = "The request body is not valid JSON."
    elif status in (404, 405):  # FastAPI's "Not Found", "Method Not Allowed"
        detail = f"{detail}: the server answers POST /predict, GET /health and GET /."
    return JSONResponse({"error": str(detail)}, status_code=status, headers=getattr(exc, "headers", None))


def page() -> "HTMLResponse":
    return HTMLResponse(resources.files("fashion_lightning").joinpath("static/index.html").read_text())


def build_server(api: "FashionAPI", accelerator: str = "auto", workers: int = 1) -> "ls.LitServer":
    server = ls.LitServer(
        api,
        accelerator=accelerator,
        workers_per_device=workers,
        max_payload_size=MAX_BODY_BYTES,
        timeout=30,
        disable_openapi_url=True,
    )
    server.app.add_exception_handler(StarletteHTTPException, error_response)  # (FastAPI's HTTPException too)
    server.app.add_exception_handler(RequestValidationError, error_response)
    # LitServe answers GET / with "litserve running"; the page takes that place.
    server.app.router.routes = [route for route in server.app.router.routes if getattr(route, "path", None) != "/"]
    server.app.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    return server


_MAIN_PID = os.getpid()


def _interrupt(signum, frame) -> None:
    if os.getpid() != _MAIN_PID:  # a forked HTTP worker inherits this handler: it just ends
        raise SystemExit(0)
    raise KeyboardInterrupt  # the main process: LitServe's graceful shutdown, workers included


def check_address(host: str, port: int) -> None:
    """Raise ``ServeError`` unless a server could listen on ``host:port`` now (LitServe itself would fail later,
    with a traceback or a bare log line, after its workers started)."""
    if not 1024 <= port <= 65535:  # LitServe's range: lower ports need root
        raise ServeError(f"--port must be between 1024 and 65535, got {port}.")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as err:
        raise ServeError(
            f"Cannot listen on {host}:{port} ({err.strerror or err}). If another server uses that port, stop it "
            "or choose another --port; --host must be an address of this machine (0.0.0.0: every interface)."
        ) from err


def serve(
    source: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_batch_size: int | None = None,
    batch_timeout: float = 0.002,
    top_k: int = 3,
    accelerator: Literal["auto", "cpu", "cuda"] = "auto",
) -> None:
    """Serve a checkpoint or an export over HTTP: POST /predict, GET /health, and a web page at GET /.

    Args:
        source: A checkpoint (``.ckpt``) or an export (``.pth`` with its ``model.json``, ``.pt2`` via torch.export,
            ``.onnx`` via onnxruntime).
        host: Address to bind; the default answers this machine only (0.0.0.0: every interface).
        port: TCP port.
        workers: Inference worker processes per device.
        max_batch_size: Concurrent requests run as one batch at most (1 turns batching off); default 64 on a GPU
            and 1 on a CPU, where a batch costs more than it saves for this small model (README: Serving).
        batch_timeout: Seconds a batch waits to fill up.
        top_k: Classes in each answer, most probable first.
        accelerator: "cpu", "cuda" or "auto" (ONNX models run on the CPU).
    """
    if ls is None:
        raise ServeError("Serving needs LitServe: pip install 'fashion-lightning[serve]'.")
    if Path(source).suffix == ".onnx":
        accelerator = "cpu"
    if max_batch_size is None:
        on_gpu = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
        max_batch_size = 64 if on_gpu else 1
    if max_batch_size < 1 or workers < 1 or top_k < 1 or not math.isfinite(batch_timeout) or batch_timeout < 0:
        raise ServeError("--workers, --max_batch_size and --top_k must be at least 1, --batch_timeout at least 0.")
    if accelerator == "cuda" and not torch.cuda.is_available():  # LitServe would start no worker and raise
        raise ServeError("--accelerator cuda: this machine has no CUDA GPU that torch can use. Serve on the CPU "
                         "(--accelerator cpu, or auto, the default).")  # fmt: skip
    check_address(host, port)
    load_predictor(source)  # fail here, with a clear message, rather than in a worker process
    api = FashionAPI(source, top_k=top_k, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    # SIGTERM (a service manager, `kill`) shuts down like Ctrl-C: LitServe then stops its worker processes too.
    signal.signal(signal.SIGTERM, _interrupt)
    batching = f"batches of up to {max_batch_size} requests" if max_batch_size > 1 else "no batching"
    print(f"Serving {source} on http://{host}:{port}/ (POST /predict, GET /health; {batching})", flush=True)
    build_server(api, accelerator=accelerator, workers=workers).run(
        host=host, port=port, generate_client_file=False, log_level="warning"
    )
