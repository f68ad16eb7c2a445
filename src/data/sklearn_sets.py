"""Data sets from scikit-learn: generators with fixed seeds, and ones bundled inside the package."""

from __future__ import annotations

from src.data.dataset import Dataset
from src.errors import boolean, check, check_arguments, count, number, one_of, random_seed


def moons(n_samples: int = 400, noise: float = 0.2, seed: int = 3) -> Dataset:
    check_arguments("data", locals(), {"n_samples": count(2), "noise": number(0, 1e3), "seed": random_seed})
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return Dataset(x, y, "classification", "moons")


def circles(n_samples: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0) -> Dataset:
    rules = {"n_samples": count(2), "noise": number(0, 1e3), "factor": number(0, 1, high_open=True), "seed": random_seed}
    check_arguments("data", locals(), rules)
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return Dataset(x, y, "classification", "circles")


def blobs(n_samples: int = 400, centers: int = 3, std: float = 1.5, seed: int = 0) -> Dataset:
    check_arguments("data", locals(), {"n_samples": count(2), "centers": count(2, 1000), "std": number(0, 1e6), "seed": random_seed})
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n_samples, centers=centers, cluster_std=std, random_state=seed)
    return Dataset(x, y, "classification", "blobs")


def gaussian_quantiles(n_samples: int = 400, n_classes: int = 2, seed: int = 0) -> Dataset:
    check_arguments("data", locals(), {"n_samples": count(2), "n_classes": count(2, 1000), "seed": random_seed})
    from sklearn.datasets import make_gaussian_quantiles

    x, y = make_gaussian_quantiles(n_samples=n_samples, n_features=2, n_classes=n_classes, random_state=seed)
    return Dataset(x, y, "classification", "gaussian_quantiles")


def breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return Dataset(bunch.data, bunch.target, "classification", "breast_cancer", [str(name) for name in bunch.target_names])


DIGIT_LAYOUTS = ("flat", "image", "sequence")


def digits(layout: str = "flat", unit_range: bool = False) -> Dataset:
    """1,797 8x8 grey-level digits (0..16): 64 features, 1x8x8 images, or 8 rows of 8 pixels.

    ``unit_range`` maps the pixels to [-1, 1], the range of a tanh generator.
    """
    from sklearn.datasets import load_digits

    check("data.layout", layout, one_of(*DIGIT_LAYOUTS))
    check("data.unit_range", unit_range, boolean)
    bunch = load_digits()
    images = bunch.images / 8.0 - 1.0 if unit_range else bunch.images
    features = {"flat": images.reshape(len(images), 64), "image": images[:, None], "sequence": images}[layout]
    return Dataset(features, bunch.target, "classification", "digits", [str(d) for d in range(10)])
