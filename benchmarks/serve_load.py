"""Requests per second and latency of ``fashion-lightning serve``, with dynamic batching on and off.

    python benchmarks/serve_load.py                     # an untrained default MLP checkpoint, made here
    python benchmarks/serve_load.py --checkpoint best.ckpt --rounds 3

Loopback only (127.0.0.1), bounded: each level sends at most ``--requests`` requests or runs ``--seconds``.
For each round, in alternating order, a server is started with batching on (``--max_batch_size 64``) and off
(``--max_batch_size 1``), and clients with 1, 8 and 64 concurrent keep-alive connections post the same PNG
(``{"image": base64}``, preprocessed exactly as ``classify`` does). Prints requests/s, p50 and p99 latency and
failures per level, the median over rounds of the batching-on / batching-off ratio, and the same model called
in-process (batch 1 and batch 64) for comparison.
"""

import argparse
import base64
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_serve import Server  # noqa: E402 (one helper, shared with the tests)

LEVELS = (1, 8, 64)


def default_checkpoint(directory: Path) -> Path:
    """An untrained default model as a checkpoint (speed does not depend on the weights)."""
    from fashion_lightning.lit_module import FashionClassifier

    torch.manual_seed(0)
    model = FashionClassifier()
    path = directory / "untrained.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def sample_body() -> bytes:
    pixels = (np.random.default_rng(0).random((28, 28)) * 60).astype(np.uint8)
    pixels[8:20, 6:22] = 220  # a bright garment-like block on a dark background
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return json.dumps({"image": base64.b64encode(buffer.getvalue()).decode()}).encode()


def load(port: int, clients: int, max_requests: int, max_seconds: float, body: bytes) -> dict:
    """``clients`` threads, each on its own keep-alive connection, share ``max_requests`` requests."""
    latencies, failures, lock = [], [0], threading.Lock()
    remaining = [max_requests]
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        connection = HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                ok = response.status == 200 and b"predictions" in response.read()
            except OSError:
                ok, connection = False, HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - start) if ok else None
                failures[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"rps": len(latencies) / elapsed, "p50": quantiles[49] * 1e3, "p99": quantiles[98] * 1e3,
            "ok": len(latencies), "failed": failures[0]}  # fmt: skip


def in_process(checkpoint: Path) -> dict:
    from fashion_lightning.inference import image_to_tensor
    from fashion_lightning.model_files import load_model

    net = load_model(checkpoint).net
    image = image_to_tensor(io.BytesIO(base64.b64decode(json.loads(sample_body())["image"])))
    results = {}
    for batch in (1, 64):
        images = image.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()
        with torch.inference_mode():
            start, calls = time.perf_counter(), 0
            while time.perf_counter() - start < 2.0:
                net(images).softmax(dim=-1)
                calls += 1
        results[batch] = calls * batch / (time.perf_counter() - start)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        image_to_tensor(io.BytesIO(base64.b64decode(json.loads(sample_body())["image"])))
        count += 1
    results["preprocess"] = count / (time.perf_counter() - start)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained default MLP made here")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (batching on, off), order alternating")
    parser.add_argument("--requests", type=int, default=1000, help="most requests per level")
    parser.add_argument("--seconds", type=float, default=15.0, help="most seconds per level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or default_checkpoint(Path(tmp))
        body = sample_body()
        runs = {"on": [], "off": []}
        for round_index in range(args.rounds):
            order = ("on", "off") if round_index % 2 == 0 else ("off", "on")
            for mode in order:
                server = Server(checkpoint, f"--max_batch_size={64 if mode == 'on' else 1}", "--accelerator=cpu")
                try:
                    load(server.port, 8, 50, 10, body)  # warm-up
                    runs[mode].append({c: load(server.port, c, args.requests, args.seconds, body) for c in LEVELS})
                finally:
                    server.stop()
        local = in_process(checkpoint)
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} rounds={args.rounds} (medians over rounds)")
    print("| batching | clients | requests/s | p50 ms | p99 ms | ok | failed |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("on", "off"):
        for clients in LEVELS:
            rows = [run[clients] for run in runs[mode]]
            med = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99")}
            ok, failed = sum(r["ok"] for r in rows), sum(r["failed"] for r in rows)
            print(f"| {mode} | {clients} | {med['rps']:.0f} | {med['p50']:.1f} | {med['p99']:.1f} | {ok} | {failed} |")
    for clients in LEVELS:
        ratios = [on[clients]["rps"] / off[clients]["rps"] for on, off in zip(runs["on"], runs["off"], strict=True)]
        print(f"batching on/off at {clients} clients: {statistics.median(ratios):.2f} (rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip
    print(f"in-process: model alone {local[1]:.0f} images/s at batch 1, {local[64]:.0f} images/s at batch 64; "
          f"PNG decode + preprocessing {local['preprocess']:.0f} images/s")  # fmt: skip


if __name__ == "__main__":
    main()
