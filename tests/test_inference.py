"""predict to CSV, classify image files, and the three export formats, from a checkpoint of a short fit."""

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fashion_lightning.callbacks import prediction_writer
from fashion_lightning.cli import cli_main
from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.export import export
from fashion_lightning.inference import image_to_tensor
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.model import MLP, NET_HPARAMS
from fashion_lightning.model_files import load_model, load_pth
from tests.helpers import TEST_COUNT, cli_args, free_port


@pytest.fixture
def checkpoint(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3")])
    return fashion.logs / "fashion" / "version_0" / "checkpoints" / "best.ckpt"


def test_predict_writes_a_csv_with_class_names(fashion, checkpoint):
    cli_main(["predict", *cli_args(fashion, f"--ckpt_path={checkpoint}")])
    with open(checkpoint.parents[1] / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == TEST_COUNT
    assert [int(row["index"]) for row in rows] == list(range(TEST_COUNT))
    labels = fashion.arrays["test_labels"][8:]
    assert all(row["actual"] == CLASS_NAMES[labels[i]] for i, row in enumerate(rows))
    assert all(row["predicted"] in CLASS_NAMES for row in rows)
    assert all(0.1 <= float(row["probability"]) <= 1 for row in rows)  # the top class of 10 has >= 10%
    model = load_model(checkpoint)
    images = torch.tensor(np.frombuffer(fashion.arrays["test_images"][16:], np.uint8).reshape(-1, 1, 28, 28)) / 255
    expected = model(images[:5]).argmax(dim=-1)
    assert [row["predicted"] for row in rows[:5]] == [CLASS_NAMES[i] for i in expected]


def test_predict_never_writes_over_earlier_predictions_unless_told(fashion, checkpoint, capsys):
    args = cli_args(fashion, f"--ckpt_path={checkpoint}")
    cli_main(["predict", *args])
    written = checkpoint.parents[1] / "predictions.csv"
    earlier = b"index,predicted,probability,actual\r\n0,Bag,0.5,\r\n"  # e.g. from another checkpoint
    written.write_bytes(earlier)
    with pytest.raises(SystemExit) as stopped:
        cli_main(["predict", *args])
    assert stopped.value.code == 2
    assert f"{written} already exists (an earlier predict's); nothing was predicted" in capsys.readouterr().err
    assert written.read_bytes() == earlier
    cli_main(["predict", *args, "--predictions.overwrite=true"])
    with open(written) as handle:
        assert len(list(csv.DictReader(handle))) == TEST_COUNT


def test_predict_into_a_place_it_cannot_write_is_one_paragraph_and_keeps_what_was_there(
    fashion, checkpoint, capsys, monkeypatch
):
    args = cli_args(fashion, f"--ckpt_path={checkpoint}")
    blocked = fashion.root / "a_file"
    blocked.write_text("not a folder")
    with pytest.raises(SystemExit) as stopped:  # found before predicting (it was a traceback after it)
        cli_main(["predict", *args, f"--predictions.path={blocked / 'p.csv'}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"error: Cannot write the predictions to {blocked / 'p.csv'} (" in err
    assert "nothing was predicted. Pass a writable --predictions.path FILE" in err
    assert "Traceback" not in err
    for overwrite in ("false", "true"):  # a folder: it said "already exists (an earlier predict's)"
        with pytest.raises(SystemExit) as stopped:
            cli_main(["predict", *args, f"--predictions.path={fashion.root}", f"--predictions.overwrite={overwrite}"])
        assert stopped.value.code == 2
        assert f"--predictions.path {fashion.root} is a folder; nothing was predicted" in capsys.readouterr().err

    written = checkpoint.parents[1] / "predictions.csv"
    earlier = b"index,predicted,probability,actual\r\n0,Bag,0.5,\r\n"
    written.write_bytes(earlier)

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prediction_writer, "atomic_write_bytes", disk_full)
    with pytest.raises(SystemExit) as stopped:  # the disk fills up while predicting
        cli_main(["predict", *args, "--predictions.overwrite=true"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"error: Cannot write the predictions to {written} (No space left on device); nothing was replaced." in err
    assert written.read_bytes() == earlier


def test_predict_on_another_split_and_path(fashion, checkpoint):
    out = fashion.root / "out" / "val.csv"
    cli_main(
        [
            "predict",
            *cli_args(fashion, f"--ckpt_path={checkpoint}", "--data.predict_split=val", f"--predictions.path={out}"),
        ]
    )
    with open(out) as handle:
        assert len(list(csv.DictReader(handle))) == 64


def write_image(path, array, mode):
    Image.fromarray(array.astype(np.uint8)).convert(mode).save(path)


def test_image_files_become_fashion_mnist_like_tensors(tmp_path):
    # A dark garment on a white background, off-center, in a big RGB photo: inverted, cropped, centered.
    photo = np.full((300, 200, 3), 255)
    photo[40:140, 20:100] = 30
    write_image(tmp_path / "photo.jpg", photo, "RGB")
    tensor = image_to_tensor(tmp_path / "photo.jpg")
    assert tensor.shape == (1, 28, 28)
    assert tensor.min() >= 0
    assert tensor.max() <= 1
    assert tensor[0, 14, 14] > 0.8  # the garment is light, as in Fashion-MNIST
    assert tensor[0, 0, 0] < 0.1
    assert tensor[0, 27, 27] < 0.1
    # Already Fashion-MNIST-like (light on black, 28x28, grayscale): unchanged apart from resampling.
    native = np.zeros((28, 28))
    native[4:24, 6:22] = 200
    write_image(tmp_path / "native.png", native, "L")
    assert image_to_tensor(tmp_path / "native.png")[0, 14, 14] == pytest.approx(200 / 255, abs=0.05)


def test_classify_prints_top_k_and_skips_bad_files(fashion, checkpoint, capsys):
    good = fashion.root / "good.png"
    write_image(good, np.full((64, 48), 255), "L")
    not_image = fashion.root / "notes.png"
    not_image.write_text("not an image")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["classify", str(checkpoint), str(not_image), str(good), str(fashion.root / "gone.jpg"), "--top_k=2"])
    assert exit_info.value.code == 1  # some files failed, the others were classified
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{not_image}: error: not a readable image")
    assert lines[1].startswith(f"{good}: ")
    assert lines[1].count("%") == 2
    assert lines[2] == f"{fashion.root / 'gone.jpg'}: error: no such file; skipped"


def test_classify_takes_folders_and_refuses_a_top_k_below_one(fashion, checkpoint, capsys):
    photos, empty = fashion.root / "photos", fashion.root / "empty"
    photos.mkdir()
    empty.mkdir()
    write_image(photos / "b.png", np.full((28, 28), 255), "L")
    write_image(photos / "a.jpg", np.full((28, 28), 128), "L")
    (photos / "notes.txt").write_text("not an image, and not taken for one")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["classify", str(checkpoint), str(photos), str(empty)])
    assert exit_info.value.code == 1  # the empty folder
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(photos / "a.jpg"), str(photos / "b.png"), str(empty)]
    assert lines[2] == f"{empty}: error: a folder without image files; skipped"
    for top_k in (0, -1):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["classify", str(checkpoint), str(photos), f"--top_k={top_k}"])
        assert exit_info.value.code == 2
        assert f"--top_k must be at least 1, got {top_k}." in capsys.readouterr().err
    cli_main(["classify", str(checkpoint), str(photos / "a.jpg"), "--top_k=11"])
    assert capsys.readouterr().out.count("%") == 10  # every class, as the server answers


def test_export_all_formats_round_trip_with_equal_outputs(fashion, checkpoint, capsys):
    written = export(str(checkpoint), str(fashion.root / "exports"), data_dir=str(fashion.data_dir))
    assert set(written) == {"pth", "pt2", "onnx"}  # the defaults; TorchScript only on request
    assert not list((fashion.root / "exports").glob(".tmp-*")), "no staging folder is left behind"
    model = load_model(checkpoint)
    images = torch.rand(7, 1, 28, 28)  # a batch size never seen at export time: ONNX and pt2 batch are dynamic
    with torch.no_grad():
        expected = model(images)
        seed_style = MLP()
        seed_style.load_state_dict(torch.load(written["pth"], weights_only=True))  # the seed's own loading code
        assert (seed_style(images) - expected).abs().max() <= 1e-5
        assert (load_pth(written["pth"])(images) - expected).abs().max() <= 1e-5
        assert (torch.export.load(str(written["pt2"])).module()(images) - expected).abs().max() <= 1e-5
    import onnxruntime

    session = onnxruntime.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    assert (onnx_out - expected).abs().max() <= 1e-5
    output = capsys.readouterr().out
    assert "Predicted: " in output
    assert ", Actual: " in output


def test_classify_takes_the_checkpoint_or_any_file_export_writes_with_the_same_answer(fashion, checkpoint, capsys):
    written = export(str(checkpoint), str(fashion.root / "exports"), data_dir=str(fashion.data_dir))
    garment = np.zeros((40, 30))
    garment[5:35, 8:22] = 220
    image = fashion.root / "garment.png"
    write_image(image, garment, "L")
    capsys.readouterr()
    answers = []
    for model_file in (checkpoint, written["pth"], written["pt2"], written["onnx"]):
        cli_main(["classify", str(model_file), str(image), "--top_k=10"])
        answers.append(capsys.readouterr().out)
    assert answers[0].startswith(f"{image}: ")
    assert answers[0].count("%") == 10
    assert answers[1:] == answers[:1] * 3  # the same classes and probabilities (to 0.1%) from every format


def a_model_file(folder, name: str):
    """Files that are not a usable Fashion-MNIST model: damaged, incomplete or another model's."""
    path = folder / name
    mlp_json = json.dumps({key: FashionClassifier().hparams[key] for key in NET_HPARAMS})  # what export writes
    if name.startswith("text"):
        path.write_text("not a model")
    elif name == "model.json":  # export's description of model.pth, given in its place
        path.write_text(mlp_json)
        torch.save(MLP().state_dict(), path.with_suffix(".pth"))
    elif name == "model.torchscript.pt":  # export writes it on request, for older runtimes; nothing here loads it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(MLP(), torch.zeros(1, 1, 28, 28)).save(str(path))
    elif name == "alone.pth":  # the weights without the model.json that says which network they belong to
        torch.save(MLP().state_dict(), path)
    elif name == "other_weights.pth":
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
        path.with_suffix(".json").write_text(mlp_json)
    else:  # another model's torch.export program: other inputs, or 5 classes
        net = (
            torch.nn.Linear(3, 2)
            if name == "other_inputs.pt2"
            else torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5))
        )
        example = torch.zeros(2, 3) if name == "other_inputs.pt2" else torch.zeros(2, 1, 28, 28)
        torch.export.save(torch.export.export(net, (example,)), str(path))
    return path


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("text.pt2", "damaged or not what `export` writes (not the zip archive"),
        ("text.onnx", "damaged or not what `export` writes (["),
        ("text.ckpt", "damaged or not a PyTorch checkpoint"),
        ("alone.pth", "needs the alone.json that `export` writes beside it"),
        ("other_weights.pth", "do not fit the network that other_weights.json describes (Missing key(s)"),
        ("other_inputs.pt2", "loads, but its model does not take Fashion-MNIST images"),
        ("five_classes.pt2", "its model answers (2, 5) for 2 images, not (2, 10)"),
        ("model.json", "describes the network of model.pth: give that file"),
        ("model.torchscript.pt", "is TorchScript, which classify and serve do not load"),
    ],
)
def test_a_model_file_classify_and_serve_cannot_use_is_one_paragraph(tmp_path, capfd, name, said):
    model_file = a_model_file(tmp_path, name)
    image = tmp_path / "garment.png"
    write_image(image, np.full((28, 28), 200), "L")
    capfd.readouterr()
    for command in (["classify", str(model_file), str(image)], ["serve", str(model_file), f"--port={free_port()}"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(command)
        assert exit_info.value.code == 2
        captured = capfd.readouterr()
        assert said in captured.err
        assert captured.err.count("\n") == 1, captured.err  # one paragraph: no traceback, no log line of torch's
        assert "Serving" not in captured.out


@pytest.mark.parametrize(
    ("flag", "files"),
    [
        ("--formats=pth", ["model.json", "model.pth"]),
        ("--formats=[pth, onnx]", ["model.json", "model.onnx", "model.pth"]),
    ],
)
def test_export_formats_flag_takes_one_format_or_a_list(fashion, checkpoint, flag, files):
    out = fashion.root / "exports"
    cli_main(["export", str(checkpoint), f"--output_dir={out}", flag, f"--data_dir={fashion.data_dir}"])
    assert sorted(p.name for p in out.iterdir()) == files


def test_export_refuses_an_empty_format_list_and_a_file_for_its_folder(fashion, checkpoint, capsys):
    a_file = fashion.root / "notes.txt"
    a_file.write_text("mine")
    for flags, said in (
        ([f"--output_dir={fashion.root / 'exports'}", "--formats=[]"], "--formats is empty: give one or more of pth"),
        ([f"--output_dir={a_file}"], f"--output_dir '{a_file}' is a file; exports go into a folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["export", str(checkpoint), *flags])
        assert exit_info.value.code == 2
        assert said in capsys.readouterr().err
    assert not (fashion.root / "exports").exists()
    assert a_file.read_text() == "mine"


def test_torchscript_on_request_without_warnings(fashion, checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TorchScript's FutureWarnings must not reach the user
        written = export(
            str(checkpoint), str(fashion.root / "ts"), formats=["torchscript"], data_dir=str(fashion.data_dir)
        )
    assert set(written) == {"torchscript"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(written["torchscript"]))
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert (scripted(images) - load_model(checkpoint)(images)).abs().max() <= 1e-5


def test_export_refuses_a_checkpoint_it_cannot_load(fashion, capsys):
    broken = fashion.root / "broken.ckpt"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", str(broken), f"--output_dir={fashion.root / 'exports'}"])
    assert exit_info.value.code == 2
    assert "damaged or not a PyTorch checkpoint" in capsys.readouterr().err
    assert not (fashion.root / "exports").exists()
