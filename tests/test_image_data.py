"""Real data sets from their published formats: IDX, CIFAR's pickled batches, image folders, arrays;
downloads with resume, retry and checksums (against a local server), the cache, and every fault in one line."""

import gzip
import hashlib
import http.server
import pickle
import threading

import numpy as np
import pytest
import torch

from src.data import image_sets
from src.data.augment import FlipCrop, batch_generator
from src.data.datamodule import DataModule
from src.data.dataset import Dataset
from src.data.downloads import Remote, ensure_files
from src.data.image_formats import read_cifar10, read_cifar_batch, read_idx
from src.errors import UserError
from tests.conftest import TEST_DATA, run_cli, run_training
from tests.published_formats import (
    cifar_batch, digit_like, idx_bytes, write_arrays, write_cifar_archive, write_idx, write_image_folder, write_mnist_files,
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("gzipped", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_idx_files_read_back_their_shape_dtype_and_values(tmp_path, gzipped, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4) if dtype != "uint8" else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    read = read_idx(write_idx(tmp_path / "a.idx", array, gzipped))
    assert read.dtype == np.dtype(dtype) and read.shape == (2, 3, 4)
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda b: b"\x08\x03" + b[2:], "not an IDX file"),                  # wrong magic
    (lambda b: b[:-1], "needs 20 bytes, the file holds 19"),             # truncated data
    (lambda b: b[:6], "header cut short"),                              # truncated header
    (lambda b: gzip.compress(b)[:-9], "gzip stream broken"),            # truncated gzip
])
def test_damaged_idx_files_are_refused_in_one_line(tmp_path, damage, words):
    path = tmp_path / "labels.idx"
    path.write_bytes(damage(idx_bytes(np.arange(12, dtype=np.uint8))))
    with pytest.raises(UserError, match=words) as error:
        read_idx(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def published_mnist(tmp_path, monkeypatch, gzipped=True):
    """MNIST's four files, small, with their checksums standing in for the published ones."""
    folder = tmp_path / "root" / "mnist"
    write_mnist_files(folder, gzipped=gzipped)
    checksums = tuple(md5((folder / name).read_bytes()) for name in image_sets.IDX_FILES)
    monkeypatch.setattr(image_sets, "MNIST_MD5", checksums)
    return folder


def test_mnist_reads_the_published_files_keeps_the_test_split_and_caches_them(tmp_path, monkeypatch):
    folder = published_mnist(tmp_path, monkeypatch)
    dataset = image_sets.mnist(root=str(tmp_path / "root"), download=False)
    assert dataset.features.shape == (120, 1, 28, 28) and dataset.features.dtype == np.float32
    assert 0 <= dataset.features.min() and dataset.features.max() == 1.0
    assert dataset.test[0].shape == (40, 1, 28, 28) and set(dataset.targets) == set(range(10))
    data = DataModule(dataset, val_fraction=0.25, standardize=True)
    assert {name: data.size(name) for name in data.splits} == {"train": 90, "val": 30, "test": 40}
    train = data.splits["train"][0]
    assert train.mean(dim=(0, 2, 3)).abs().max() < 1e-5 and (train.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3  # per channel
    assert data.spec.mean.shape == (1, 1, 1) and data.spec.info == {"picture_mode": "L"}  # predict reads grey pictures for it
    # The next start reads the cache alone.
    for name in image_sets.IDX_FILES:
        (folder / name).unlink()
    again = image_sets.mnist(root=str(tmp_path / "root"), download=False)
    np.testing.assert_array_equal(again.features, dataset.features)
    np.testing.assert_array_equal(again.test[1], dataset.test[1])
    # A picture file of one of them reads back as the data set's row, in [0, 1] or, for a tanh generator, in [-1, 1].
    from PIL import Image

    Image.fromarray((dataset.features[7, 0] * 255).round().astype(np.uint8)).save(tmp_path / "7.png")
    for unit_range in (False, True):
        pixels = image_sets.mnist(root=str(tmp_path / "root"), download=False, unit_range=unit_range)
        np.testing.assert_array_equal(image_sets.pictures([tmp_path / "7.png"], pixels.info, (28, 28), "input")[0], pixels.features[7])


def test_a_changed_byte_is_refused_naming_the_file_and_both_checksums(tmp_path, monkeypatch):
    folder = published_mnist(tmp_path, monkeypatch)
    path = folder / image_sets.IDX_FILES[1]
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(UserError) as error:
        image_sets.mnist(root=str(tmp_path / "root"), download=False)
    message = str(error.value)
    assert str(path) in message and image_sets.MNIST_MD5[1] in message and md5(bytes(blob)) in message
    assert not (folder / "mnist.npz").exists()


def test_a_truncated_file_with_the_right_name_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    folder = published_mnist(tmp_path, monkeypatch, gzipped=True)
    path = folder / image_sets.IDX_FILES[0]
    blob = gzip.compress(gzip.decompress(path.read_bytes())[:-100])  # a whole gzip of a cut IDX
    path.write_bytes(blob)
    monkeypatch.setattr(image_sets, "MNIST_MD5", (md5(blob), *image_sets.MNIST_MD5[1:]))
    with pytest.raises(UserError, match="truncated or corrupt"):
        image_sets.mnist(root=str(tmp_path / "root"), download=False)
    assert not (folder / "mnist.npz").exists()


def test_missing_files_offline_name_every_file_and_the_folder(tmp_path):
    result = run_cli("src.train", "data=mnist", f"data.root={tmp_path}", "data.download=false", "model=mlp", "logger=none",
                     f"paths.log_dir={tmp_path / 'logs'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "mnist") in line and all(name in line for name in image_sets.IDX_FILES)


def test_an_unreachable_server_ends_in_one_line_saying_what_to_put_where(tmp_path):
    remote = Remote("file.bin", ("http://127.0.0.1:9/file.bin",), "0" * 32)  # port 9: nothing listens
    with pytest.raises(UserError) as error:
        ensure_files([remote], tmp_path, True, "demo", attempts=2, pause=0)
    assert "could not download file.bin" in str(error.value) and str(tmp_path) in str(error.value)
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "file.bin.part"])  # never a file under the complete name


class FlakyServer(http.server.ThreadingHTTPServer):
    """Serves ``files``; the first request for each is cut off half-way; ranges are honoured."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests, self.cut = files, [], set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805
                name, ranged = handler.path.lstrip("/"), handler.headers.get("Range")
                self.requests.append((name, ranged))
                blob = self.files[name]
                start = int(ranged.split("=")[1].rstrip("-")) if ranged else 0
                body = blob[start:]
                handler.send_response(206 if ranged else 200)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                if name not in self.cut:
                    self.cut.add(name)
                    handler.wfile.write(body[: len(body) // 2])
                    return  # HTTP/1.0: the connection closes, short of Content-Length
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def flaky_server():
    servers = []

    def start(files):
        server = FlakyServer(files)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_download_cut_half_way_is_resumed_verified_and_read(tmp_path, monkeypatch, flaky_server):
    source = tmp_path / "published"
    write_mnist_files(source)
    files = {name: (source / name).read_bytes() for name in image_sets.IDX_FILES}
    server, url = flaky_server(files)
    monkeypatch.setattr(image_sets, "MNIST_MIRRORS", (url,))
    monkeypatch.setattr(image_sets, "MNIST_MD5", tuple(md5(blob) for blob in files.values()))
    monkeypatch.setattr("src.data.downloads.time.sleep", lambda seconds: None)
    dataset = image_sets.mnist(root=str(tmp_path / "root"))
    assert len(dataset.targets) == 120
    folder = tmp_path / "root" / "mnist"
    assert {p.name for p in folder.iterdir()} == {*image_sets.IDX_FILES, "mnist.npz"}  # no .part left
    for name, blob in files.items():
        assert (folder / name).read_bytes() == blob
        asked = [ranged for seen, ranged in server.requests if seen == name]
        assert asked[0] is None and asked[1] is not None and int(asked[1].split("=")[1].rstrip("-")) > 0  # resumed


def test_a_download_that_arrives_changed_is_fetched_again_then_refused(tmp_path, flaky_server):
    server, url = flaky_server({"a.bin": b"x" * 1000})
    remote = Remote("a.bin", (url + "a.bin",), md5(b"y" * 1000))
    with pytest.raises(UserError, match="MD5"):
        ensure_files([remote], tmp_path, True, "demo", attempts=3, pause=0)
    assert not (tmp_path / "a.bin").exists()


def test_cifar10_reads_the_archive_and_the_extracted_folder_alike(tmp_path):
    archive = read_cifar10(write_cifar_archive(tmp_path / "cifar-10-python.tar.gz"))
    folder = read_cifar10(write_cifar_archive(tmp_path / "cifar-10-batches-py", extracted=True))
    assert archive["train"][0].shape == (100, 3, 32, 32) and archive["test"][0].shape == (20, 3, 32, 32)
    assert archive["train"][0].dtype == np.uint8 and archive["train"][1].max() <= 9
    for split in ("train", "test"):
        for a, b in zip(archive[split], folder[split]):
            np.testing.assert_array_equal(a, b)
    images, labels = digit_like(3, size=32, channels=3)
    x, y = read_cifar_batch(cifar_batch(images, labels, "b"), "b")
    np.testing.assert_array_equal(x, images) and np.testing.assert_array_equal(y, labels)


def test_cifar10_data_set_from_its_archive(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    archive = write_cifar_archive(folder / "cifar-10-python.tar.gz")
    monkeypatch.setattr(image_sets, "CIFAR10", Remote(archive.name, ("http://127.0.0.1:9/",), md5(archive.read_bytes())))
    dataset = image_sets.cifar10(root=str(tmp_path), download=False)
    assert dataset.features.shape == (100, 3, 32, 32) and dataset.class_names[0] == "airplane"
    assert (folder / "cifar10.npz").is_file()


class RunsCode:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['MARK'], 'w').write('ran')",))


def test_a_pickle_that_tries_to_run_code_is_refused_and_never_run(tmp_path, monkeypatch):
    mark = tmp_path / "mark"
    monkeypatch.setenv("MARK", str(mark))
    blob = pickle.dumps({"data": RunsCode(), "labels": [0]}, protocol=2)
    with pytest.raises(UserError, match=r"refused to load (__builtin__|builtins)\.exec"):
        read_cifar_batch(blob, "evil_batch")
    assert not mark.exists()
    with pytest.raises(UserError, match="not a CIFAR batch"):
        read_cifar_batch(b"\x80\x02garbage", "garbage_batch")


def test_an_image_folder_is_read_resized_and_labelled_by_its_sub_folders(tmp_path):
    folder = write_image_folder(tmp_path / "pictures")
    dataset = image_sets.image_folder(str(folder), image_size=[8, 12], channels=1)
    assert dataset.features.shape == (24, 1, 8, 12) and dataset.class_names == ["cats", "dogs"]
    assert list(np.bincount(dataset.targets)) == [12, 12] and 0 <= dataset.features.min() <= dataset.features.max() <= 1
    (folder / "dogs" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(UserError, match="broken.png is not a readable image"):
        image_sets.image_folder(str(folder))
    assert image_sets.image_folder(str(folder), on_bad_file="skip").features.shape == (24, 3, 32, 32)


def test_a_model_trained_on_pictures_predicts_picture_files_as_it_scored_them_in_training(tmp_path):
    import csv

    from src.build import build_from_checkpoint
    from src.predict import predict

    folder = write_image_folder(tmp_path / "pictures")
    run_training(
        tmp_path / "run", "data=image_folder", f"data.path={folder}", "data.image_size=[10,12]", "model=cnn",
        "model.channels=[4]", "model.hidden=[8]", "trainer.max_steps=30", "optimizer=adam", "logger=none",
    )
    checkpoint = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert predict(checkpoint, str(folder), str(tmp_path / "all.csv")) == 24
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert [row["file"] for row in rows] == [str(path) for name in ("cats", "dogs") for path in sorted((folder / name).iterdir())]
    task, spec, _ = build_from_checkpoint(checkpoint)
    with torch.no_grad():  # the same pixels, resized and standardized as the run's own data
        expected = task.prediction_columns(spec.scale(torch.from_numpy(image_sets.image_folder(str(folder), image_size=[10, 12]).features)))
    assert [row["prediction"] for row in rows] == expected["prediction"] and [row["probability"] for row in rows] == expected["probability"]
    one = folder / "dogs" / "3.png"
    assert predict(checkpoint, str(one), str(tmp_path / "one.csv")) == 1
    assert list(csv.DictReader((tmp_path / "one.csv").open())) == [row for row in rows if row["file"] == str(one)]
    (folder / "dogs" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(UserError, match=r"^input='.*pictures': .*broken\.png is not a readable image"):
        predict(checkpoint, str(folder), str(tmp_path / "o.csv"))


def test_a_picture_for_a_model_of_rows_is_refused_in_one_line(tmp_path):
    from src.predict import predict

    folder = write_image_folder(tmp_path / "pictures")
    run_training(tmp_path / "run", "data=digits", "model=mlp", "trainer.max_steps=2", "logger=none")
    for given, what in ((folder, "a folder"), (folder / "cats" / "1.png", "a picture")):
        with pytest.raises(UserError) as error:
            predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(given), str(tmp_path / "o.csv"))
        assert str(error.value) == f"input='{given}': {what}, but this model takes rows of 64 numbers (data digits): give a CSV"


def test_arrays_from_an_npz_or_a_folder_of_npy_files(tmp_path):
    dataset = image_sets.arrays(str(write_arrays(tmp_path / "a.npz")))
    assert dataset.target_type == "classification" and dataset.features.shape == (60, 3)
    (tmp_path / "pair").mkdir()
    np.save(tmp_path / "pair" / "x.npy", dataset.features)
    np.save(tmp_path / "pair" / "y.npy", dataset.features[:, 0] * 2.0)
    assert image_sets.arrays(str(tmp_path / "pair")).target_type == "regression"
    np.savez(tmp_path / "bad.npz", x=dataset.features)
    with pytest.raises(UserError, match="needs arrays named x and y; it holds x"):
        image_sets.arrays(str(tmp_path / "bad.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="not readable numpy arrays"):
        image_sets.arrays(str(tmp_path / "junk.npz"))


def test_flip_crop_moves_pixels_only_and_draws_the_same_for_the_same_batch():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    augment = FlipCrop(pad=2)
    a = augment(x, batch_generator(torch.device("cpu"), 7, 64))
    b = augment(x, batch_generator(torch.device("cpu"), 7, 64))
    assert torch.equal(a, b) and a.shape == x.shape
    assert set(a.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # original pixels, or the zero padding
    assert not torch.equal(a, augment(x, batch_generator(torch.device("cpu"), 7, 128)))
    assert torch.equal(FlipCrop(flip=False, pad=0)(x, batch_generator(torch.device("cpu"), 0, 0)), x)


@pytest.mark.parametrize("seeds", [5, [5, 6]])
def test_each_rank_augments_its_rows_as_one_process_augments_the_global_batch(seeds):
    """Under torchrun, rank r holds rows r, r + world, ... of each global batch, each flipped and cropped
    as in one process: the ranks' draws neither repeat one another's nor change with the world size."""
    pictures = np.random.default_rng(0).random((43, 3, 6, 6), dtype=np.float32)  # 43 rows: a short last batch
    data = DataModule(Dataset(pictures, np.arange(43) % 2))
    data.augment = FlipCrop(pad=2)
    one = list(data.batches("train", 16, seeds))
    for world in (2, 3, 12):  # 12: the last batch's 11 rows leave rank 11 none; it gets row 0 (weighted 0)
        ranks = [list(data.batches("train", 16, seeds, shard=(rank, world))) for rank in range(world)]
        for position, (x, y) in enumerate(one):
            rows = x.shape[-4]
            merged = torch.empty_like(x)
            for rank in range(world):
                part, labels = ranks[rank][position]
                if rank >= rows:
                    assert torch.equal(part, x[..., :1, :, :, :]) and torch.equal(labels, y[..., :1])
                    continue
                merged[..., rank:rows:world, :, :, :] = part
                assert torch.equal(labels, y[..., rank::world])
            assert torch.equal(merged, x)


@pytest.mark.slow
def test_augmented_stacked_seeds_end_as_each_seed_alone(tmp_path):
    args = ["experiment=cnn_digits", "augment=flip_crop", "model.channels=[4]", "model.hidden=[8]", "model.dropout=0",
            "trainer.max_epochs=2", "logger=none", "trainer.device=cpu"]
    stacked = run_training(tmp_path / "stacked", *args, "trainer.seeds=[3,4]")
    for seed in (3, 4):
        alone = run_training(tmp_path / str(seed), *args, f"trainer.seed={seed}")
        assert stacked["per_seed"][str(seed)]["val/loss"] == pytest.approx(alone["val/loss"], rel=1e-4)


def test_augmenting_data_that_are_not_pictures_is_refused_in_one_line(tmp_path):
    result = run_cli("src.train", "augment=flip_crop", "logger=none", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2 and "augment=" in result.stderr.strip().splitlines()[-1] and "needs pictures" in result.stderr


def test_auto_keeps_on_the_gpu_what_takes_under_half_its_free_memory(monkeypatch):
    data = DataModule(image_sets.arrays(str(write_arrays(TEST_DATA / "sized.npz", rows=1000))))  # 1000×3 floats + labels
    size = sum(x.nbytes + y.nbytes for x, y in data.splits.values())
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2 * size + 2, 10**12))
    assert data.on_device(cuda)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2 * size - 2, 10**12))
    assert not data.on_device(cuda)
    data.on_device_setting = True
    assert data.on_device(cuda)
    data.on_device_setting = False
    assert not data.on_device(torch.device("cpu")) and not data.on_device(cuda)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])])
def test_batches_from_cpu_memory_give_the_numbers_of_batches_on_the_device(tmp_path, device):
    args = ["data=cifar10", "augment=flip_crop", "model=cnn", "model.channels=[4]", "model.hidden=[8]",
            "optimizer=adam", "trainer.max_epochs=2", "trainer.max_steps=null", "logger=none", f"trainer.device={device}"]
    on_device = run_training(tmp_path / "on", *args, "data.on_device=true")
    from_host = run_training(tmp_path / "host", *args, "data.on_device=false")
    assert from_host["val/loss"] == pytest.approx(on_device["val/loss"], rel=1e-5)
    assert from_host["test/acc"] == on_device["test/acc"]
