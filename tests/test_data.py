"""Data sets: the notes' flower exactly, deterministic stratified splits, train-only scaling, CSV files."""

import numpy as np
import pytest
import torch

from src.data.csv_table import load_csv
from src.data.datamodule import DataModule
from src.data.planar import planar_flower
from src.data.sklearn_sets import breast_cancer, digits


def notes_load_planar_dataset():
    """The notes' source, as written there (global numpy seed)."""
    np.random.seed(1)
    m = 400
    N = int(m / 2)
    D = 2
    X = np.zeros((m, D))
    Y = np.zeros((m, 1), dtype="uint8")
    a = 4
    for j in range(2):
        ix = range(N * j, N * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + np.random.randn(N) * 0.2
        r = a * np.sin(4 * t) + np.random.randn(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    return X.T, Y.T


def test_planar_flower_is_exactly_the_notes_data():
    x_notes, y_notes = notes_load_planar_dataset()
    data = planar_flower()
    np.testing.assert_array_equal(data.features, x_notes.T)
    np.testing.assert_array_equal(data.targets, y_notes[0])
    assert data.features.shape == (400, 2) and np.bincount(data.targets).tolist() == [200, 200]


def test_default_planar_data_trains_on_all_400_points():
    module = DataModule(planar_flower())
    assert list(module.splits) == ["train"] and module.size("train") == 400
    assert module.splits["train"][1].dtype == torch.float32  # binary targets as 0./1.


def test_split_is_deterministic_stratified_and_disjoint():
    data = digits()
    a = DataModule(data, val_fraction=0.15, test_fraction=0.2, split_seed=0)
    b = DataModule(data, val_fraction=0.15, test_fraction=0.2, split_seed=0)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split][0], b.splits[split][0])
    sizes = {split: a.size(split) for split in a.splits}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 360
    overall = torch.bincount(torch.as_tensor(data.targets), minlength=10).float() / 1797
    for split in ("train", "val", "test"):  # every digit in the data set's proportion, to rounding
        counts = torch.bincount(a.splits[split][1], minlength=10).float()
        assert (counts - overall * sizes[split]).abs().max() <= 1.5
    rows = {tuple(row.tolist()) for split in a.splits for row in a.splits[split][0]}
    assert len(rows) == len({tuple(row) for row in data.features})  # no row in two splits


def test_standardization_is_fitted_on_train_only():
    module = DataModule(breast_cancer(), val_fraction=0.2, test_fraction=0.2, standardize=True)
    train = module.splits["train"][0]
    torch.testing.assert_close(train.mean(0), torch.zeros(30), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(30), atol=1e-4, rtol=0)
    assert module.splits["test"][0].mean(0).abs().max() > 1e-3  # test data is scaled, not re-fitted


def test_digits_layouts():
    flat, image, sequence = digits("flat"), digits("image"), digits("sequence")
    assert flat.features.shape == (1797, 64) and image.features.shape == (1797, 1, 8, 8)
    assert sequence.features.shape == (1797, 8, 8)  # 8 steps of 8 pixels
    np.testing.assert_array_equal(image.features[5, 0, 2], flat.features[5, 16:24])
    np.testing.assert_array_equal(sequence.features[5, 2], flat.features[5, 16:24])
    assert DataModule(image).spec.input_shape == (1, 8, 8)
    unit = digits("flat", unit_range=True).features
    assert unit.min() == -1.0 and unit.max() == 1.0


def test_shuffled_batches_cover_the_split_once_in_a_seeded_order():
    module = DataModule(digits(), test_fraction=0.2)
    batches = list(module.batches("train", 64, shuffle_seed=3))
    assert [len(y) for _, y in batches[:-1]] == [64] * (len(batches) - 1)
    seen = torch.cat([x for x, _ in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, module.splits["train"][0].tolist()))
    again = list(module.batches("train", 64, shuffle_seed=3))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    resumed = list(module.batches("train", 64, shuffle_seed=3, skip=5))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches[5:], resumed))
    other = list(module.batches("train", 64, shuffle_seed=4))
    assert not torch.equal(batches[0][1], other[0][1])


def test_one_whole_batch_is_the_split_itself_where_nothing_asks_for_other_rows():
    data = DataModule(breast_cancer(), val_fraction=0.2)
    x, y = data.splits["train"]
    (batch,) = data.batches("train", None, shuffle_seed=3)
    assert batch[0] is x and batch[1] is y  # no copy, every step of whole-batch descent
    assert list(data.batches("train", None, shuffle_seed=3, skip=1)) == []  # a resume after the epoch's one batch
    (rank_1,) = data.batches("train", None, 3, shard=(1, 2))
    assert torch.equal(rank_1[0], x[1::2])
    (stacked,) = data.batches("train", None, 3, members=3)
    assert stacked[0].shape == (3, *x.shape) and torch.equal(stacked[0][2], x)
    data.sample_for_evaluation("train", 10)
    (training,) = data.batches("train", len(y) + 5, shuffle_seed=3)
    (scored,) = data.batches("train", None)
    assert training[0] is x and len(scored[0]) == 10


def test_csv_with_named_labels_and_chosen_features(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("length,width,colour,species\n1.0,2.0,3,setosa\n1.5,2.5,4,virginica\n1.1,2.1,5,setosa\n")
    data = load_csv(str(path), "species", features=["width", "length"])
    np.testing.assert_array_equal(data.features, [[2.0, 1.0], [2.5, 1.5], [2.1, 1.1]])
    assert data.targets.tolist() == [0, 1, 0] and data.class_names == ["setosa", "virginica"]


def test_csv_regression_targets_are_read_as_written_and_a_bad_one_is_named(tmp_path):
    from src.errors import UserError

    path = tmp_path / "r.csv"
    path.write_text("x,y\n1,0.1\n2, -2.5e3 \n3,1_000\n")
    data = load_csv(str(path), "y", target_type="regression")
    assert data.targets.tolist() == [0.1, -2500.0, 1000.0]
    for text, refusal in [("2,inf\n3,4", "line 3: 'inf' is not a finite number"), ("2,3\n3,x", "line 4: 'x' is not a number")]:
        path.write_text(f"x,y\n1,0.1\n{text}\n")
        with pytest.raises(UserError, match=rf"r\.csv column 'y' {refusal}"):
            load_csv(str(path), "y", target_type="regression")


def test_csv_numeric_labels_sort_by_value(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("x,y\n1,10\n2,2\n3,10\n")
    assert load_csv(str(path), "y").class_names == ["2", "10"]


def test_nan_in_generated_features_is_refused():
    data = planar_flower()
    data.features[3, 1] = np.nan
    with pytest.raises(Exception, match="features hold NaN or inf"):
        DataModule(data)


def test_a_split_sampled_for_evaluation_gives_the_same_rows_at_every_check_and_training_gets_all():
    data = DataModule(breast_cancer(), val_fraction=0.2, test_fraction=0.2)
    x, y = data.splits["train"]
    data.sample_for_evaluation("train", "auto")  # as many rows as val
    (first,) = list(data.batches("train", None))
    again = torch.cat([rows for rows, _ in data.batches("train", 7)])
    assert len(first[0]) == data.size("val") < data.size("train")
    assert torch.equal(first[0], again) and torch.equal(first[0], x[data.evaluation_rows["train"]])
    assert len({tuple(row.tolist()) for row in first[0]}) == len(first[0])  # distinct rows of the split
    shuffled = torch.cat([rows for rows, _ in data.batches("train", 64, shuffle_seed=3)])
    assert len(shuffled) == data.size("train")  # training batches draw from every row
    data.sample_for_evaluation("train", 10)
    assert len(next(data.batches("train", None))[0]) == 10
    for everything in ("all", data.size("train")):
        data.sample_for_evaluation("train", everything)
        assert torch.equal(next(data.batches("train", None))[0], x)
    no_val = DataModule(breast_cancer())
    no_val.sample_for_evaluation("train", "auto")
    assert len(next(no_val.batches("train", None))[0]) == no_val.size("train")
