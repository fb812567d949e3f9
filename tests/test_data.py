"""The DataModule: splits, batches, cache, samplers, augmentation, on the tiny IDX fixture."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from torchvision.transforms.functional import to_tensor

from fashion_lightning.augmentation import random_crop_flip
from fashion_lightning.data import CLASS_NAMES, ResumableSampler, batch_as_is
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import ConfigurationError, DataUnavailableError
from fashion_lightning.raw_files import cache_path, load_split
from tests.helpers import TEST_COUNT, TRAIN_COUNT


def prepared(fashion, **kwargs) -> FashionMNISTDataModule:
    kwargs.setdefault("val_size", 64)
    dm = FashionMNISTDataModule(data_dir=str(fashion.data_dir), source_dir=str(fashion.source_dir), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_init_does_no_work(fashion):
    FashionMNISTDataModule(data_dir=str(fashion.data_dir), source_dir=str(fashion.source_dir))
    assert not fashion.data_dir.exists()


def test_split_sizes_and_official_test_set(fashion):
    dm = prepared(fashion, val_size=64)
    assert len(dm.datasets["train"]) == TRAIN_COUNT - 64
    assert len(dm.datasets["val"]) == 64
    assert len(dm.datasets["test"]) == TEST_COUNT
    assert len(CLASS_NAMES) == dm.num_classes == 10


def test_validation_split_is_fixed_and_disjoint(fashion):
    first, second = prepared(fashion, val_size=64), prepared(fashion, val_size=64)
    assert torch.equal(first.datasets["val"].images, second.datasets["val"].images)
    train_rows = {bytes(image.numpy()) for image in first.datasets["train"].images}
    assert not any(bytes(image.numpy()) in train_rows for image in first.datasets["val"].images)


def test_val_size_zero_validates_on_test_like_the_seed(fashion):
    dm = prepared(fashion, val_size=0, shuffle=False)
    assert dm.datasets["val"] is dm.datasets["test"]
    labels = torch.cat([y for _, y in dm.train_dataloader()])
    assert torch.equal(labels, torch.tensor(list(fashion.arrays["train_labels"][8:])))


def test_bad_val_size_is_a_clear_error(fashion):
    with pytest.raises(ConfigurationError, match="val_size"):
        prepared(fashion, val_size=TRAIN_COUNT)


def test_batches_match_torchvision_to_tensor(fashion):
    dm = prepared(fashion, val_size=0, shuffle=False, batch_size=64)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 1, 28, 28)
    assert images.dtype == torch.float32
    assert labels.shape == (64,)
    assert labels.dtype == torch.int64
    raw = np.frombuffer(fashion.arrays["train_images"][16:], np.uint8).reshape(-1, 28, 28)
    expected = torch.stack([to_tensor(raw[i]) for i in range(64)])
    assert torch.equal(images, expected)  # bit-identical to the seed's ToTensor


def test_loaders_cover_every_image_once(fashion):
    dm = prepared(fashion, val_size=64)
    assert sum(len(y) for _, y in dm.train_dataloader()) == TRAIN_COUNT - 64
    assert sum(len(y) for _, y in dm.test_dataloader()) == TEST_COUNT


def test_each_epoch_has_its_own_order_and_it_is_reproducible(fashion):
    loader = prepared(fashion, shuffle=True).train_dataloader()

    def epoch_labels(epoch):
        loader.sampler.set_epoch(epoch)  # as Lightning does before every epoch
        return torch.cat([y for _, y in loader])

    first, second = epoch_labels(0), epoch_labels(1)
    assert not torch.equal(first, second)
    assert torch.equal(first.sort().values, second.sort().values)
    assert torch.equal(epoch_labels(0), first)


def test_loader_resumes_mid_epoch_at_the_exact_image(fashion):
    dm = prepared(fashion, shuffle=True, batch_size=32)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    full = [y for _, y in loader]
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    resumed = prepared(fashion, shuffle=True, batch_size=32).train_dataloader()
    resumed.load_state_dict(state)
    rest = [y for _, y in resumed]
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, full[3:], strict=True))


def test_cache_is_written_and_rebuilt_when_damaged(fashion):
    prepared(fashion)
    path = cache_path(fashion.data_dir, "train")
    assert path.is_file()
    path.write_bytes(b"not a tensor file")
    images, labels = load_split(fashion.data_dir, "train")
    assert images.shape == (TRAIN_COUNT, 28, 28)
    assert len(labels) == TRAIN_COUNT
    assert torch.load(path, weights_only=True)["images"].shape == (TRAIN_COUNT, 28, 28)


def test_setup_without_prepared_files_says_what_to_do(fashion):
    dm = FashionMNISTDataModule(data_dir=str(fashion.data_dir))
    with pytest.raises(DataUnavailableError, match="prepare"):
        dm.setup("fit")


def test_works_with_an_injected_distributed_sampler(fashion):
    dataset = prepared(fashion).datasets["train"]
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=1)
        loader = DataLoader(dataset, batch_size=32, sampler=sampler, collate_fn=batch_as_is)
        seen += [y for _, y in loader]
    assert sum(len(y) for y in seen) == len(dataset)


@pytest.mark.parametrize(
    ("items", "replicas", "shuffle"), [(160, 1, True), (10, 3, True), (10, 3, False), (3, 8, True)]
)
def test_sampler_order_is_distributed_samplers(items, replicas, shuffle):
    """Same shards, padding and per-epoch order as ``DistributedSampler``, computed as tensors."""
    for rank in range(replicas):
        ours = ResumableSampler(range(items), batch_size=4, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=7)
        torch_sampler = DistributedSampler(range(items), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=7)
        for epoch in (0, 5):
            ours.set_epoch(epoch)
            torch_sampler.set_epoch(epoch)
            assert torch.cat(list(ours)).tolist() == list(torch_sampler)


def test_sampler_batches_of_given_sizes_resume_at_the_batch_their_position_is_in():
    sampler = ResumableSampler(range(10), batch_size=4, shuffle=False, sizes=[4, 2, 8])  # (the last given larger)
    assert len(sampler) == 3
    assert [batch.tolist() for batch in sampler] == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]
    for position, rest in [(6, [[6, 7, 8, 9]]), (5, [[5], [6, 7, 8, 9]]), (10, [])]:  # (5: saved under other sizes)
        sampler.load_state_dict({"epoch": 0, "yielded": position})
        assert [batch.tolist() for batch in sampler] == rest
        assert sampler.state_dict() == {"epoch": 0, "yielded": 10}


def test_eval_loader_under_three_ranks_covers_test_exactly_once(fashion):
    dm = prepared(fashion)

    class FakeTrainer:
        world_size, global_rank = 3, 0  # 160 images over 3 ranks: Lightning's default sampler would pad to 162

    counts = []
    for rank in range(3):
        FakeTrainer.global_rank = rank
        dm.trainer = FakeTrainer()
        counts.append(sum(len(y) for _, y in dm.test_dataloader()))
    assert sum(counts) == TEST_COUNT


def test_augmentation_keeps_shape_range_and_labels(fashion):
    dm = prepared(fashion, val_size=0, shuffle=False)
    images, labels = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    augmented = random_crop_flip(images)
    assert augmented.shape == images.shape
    assert augmented.dtype == images.dtype
    assert augmented.min() >= 0
    assert augmented.max() <= 1
    assert not torch.equal(augmented, images)
    # Shifts move pixels but add none: no image gets brighter in total.
    assert (augmented.sum(dim=(1, 2, 3)) <= images.sum(dim=(1, 2, 3)) + 1e-4).all()
    _, augmented_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(augmented_labels, labels)


def test_augmentation_without_shift_or_flip_is_identity():
    images = torch.rand(8, 1, 28, 28)
    assert torch.equal(random_crop_flip(images, padding=0, flip=False), images)
