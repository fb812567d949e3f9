"""End to end on the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by `make data` and .ci/run)."""

from pathlib import Path

import pytest

from fashion_lightning.cli import cli_main

REAL_DATA = Path("/usr/share/datasets/fashion-mnist")
SEED_CONFIG = Path(__file__).parents[1] / "configs" / "seed.yaml"
SEED_LOOP_TEST_ACC = 0.649  # the seed's plain loop after 5 epochs (../shared/DESIGN.md)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL_DATA / "train-images-idx3-ubyte.gz").is_file(), reason="real data not installed"),
]


def real_args(tmp_path, *extra):
    return [
        f"--data.data_dir={tmp_path / 'data'}",
        f"--data.source_dir={REAL_DATA}",
        "--data.download=false",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'lightning_logs'}",
        *extra,
    ]


def test_seed_recipe_matches_the_seeds_plain_loop(tmp_path, capsys):
    cli_main(["fit", f"--config={SEED_CONFIG}", *real_args(tmp_path)])
    best = next((tmp_path / "lightning_logs").glob("fashion/version_*/checkpoints/best.ckpt"))
    cli = cli_main(["test", *real_args(tmp_path, f"--ckpt_path={best}")])
    test_acc = float(cli.trainer.callback_metrics["test/acc"])
    assert cli.model.evaluated_images["test"] == 10_000
    assert abs(test_acc - SEED_LOOP_TEST_ACC) <= 0.02, test_acc
    assert "on 10,000 images" in capsys.readouterr().out


def test_the_page_classifies_a_real_test_image_in_a_real_browser(tmp_path):
    """A real Fashion-MNIST test image, saved as PNG, uploaded through the page of a server for a model trained on
    the real data (one short epoch), and its label read back from the page."""
    import numpy as np
    import torch
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from fashion_lightning.data import CLASS_NAMES
    from fashion_lightning.inference import image_to_tensor
    from fashion_lightning.model_files import load_model
    from fashion_lightning.raw_files import load_split
    from tests.test_serve import Server, chromium_driver

    fast = ["--model.optimizer=adamw", "--trainer.max_epochs=1", "--trainer.limit_train_batches=300"]
    cli = cli_main(["fit", *real_args(tmp_path, *fast)])
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    model = load_model(checkpoint)
    images, labels = load_split(tmp_path / "data", "test")
    png = tmp_path / "real-test-image.png"
    for index in range(50):  # the first test image this short training gets right, as the page must show
        Image.fromarray(images[index].numpy()).save(png)
        with torch.no_grad():
            if int(model(image_to_tensor(png).unsqueeze(0)).argmax()) == int(labels[index]):
                break
    else:
        pytest.fail("the short training got none of the first 50 test images right")
    expected = CLASS_NAMES[int(labels[index])]
    server, browser = Server(checkpoint), chromium_driver()
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        browser.find_element(By.ID, "file").send_keys(str(png))
        top1 = WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "top1")))
        assert top1.find_element(By.CLASS_NAME, "label").text == expected
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert np.asarray(Image.open(tmp_path / "page.png")).std() > 0  # a rendered page, not a blank one
    finally:
        browser.quit()
        server.stop()
