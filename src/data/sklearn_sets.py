"""Data sets from scikit-learn: generators with fixed seeds, and ones bundled inside the package."""

from __future__ import annotations

from src.data.dataset import Dataset


def moons(n_samples: int = 400, noise: float = 0.2, seed: int = 3) -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return Dataset(x, y, "classification", "moons")


def circles(n_samples: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return Dataset(x, y, "classification", "circles")


def blobs(n_samples: int = 400, centers: int = 3, std: float = 1.5, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n_samples, centers=centers, cluster_std=std, random_state=seed)
    return Dataset(x, y, "classification", "blobs")


def gaussian_quantiles(n_samples: int = 400, n_classes: int = 2, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_gaussian_quantiles

    x, y = make_gaussian_quantiles(n_samples=n_samples, n_features=2, n_classes=n_classes, random_state=seed)
    return Dataset(x, y, "classification", "gaussian_quantiles")


def breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return Dataset(bunch.data, bunch.target, "classification", "breast_cancer", list(bunch.target_names))


def digits(as_images: bool = False) -> Dataset:
    """1,797 8x8 grey-level digits (0..16); flat 64 features, or 1x8x8 images."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    features = bunch.images[:, None, :, :] if as_images else bunch.data
    return Dataset(features, bunch.target, "classification", "digits", [str(d) for d in range(10)])
