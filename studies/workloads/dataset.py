"""The dataset as the trainers see it: ``Dataset``, a whole dataset in memory as tensors, and
``RawImages``, the pixels as a reader finds them on disk (uint8, before normalisation)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor

SUBSET_SEED = 0  # the fixed order of image-folder training images, and the digits split


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole dataset in memory: images normalised float32 NCHW, labels int64 (a plugin's
    workload may hold any inputs and targets: ``[N, features]`` rows, ``[N, T]`` tokens; the
    image fields then keep their defaults). Text (``shakespeare``): int64 windows of
    characters ``[N, context]`` and their next characters, ``num_classes`` the vocabulary.

    ``mean``/``std`` are the per-channel statistics the images were normalised with (so that
    augmentation can pad with black and figures can undo the normalisation).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int = 0  # classes (or a vocabulary's size); 0 where it means nothing
    in_channels: int = 0  # image channels; 0 for inputs that are not images
    image_size: int = 0  # pixels per side; 0 for inputs that are not images
    augment: bool = False  # crop + flip (images only)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_x.shape[0])

    def first_test(self, n: int | None) -> Dataset:
        """The first ``n`` test examples (views, no copy); all of them where ``n`` is None or
        not smaller: ``test_subset``, honoured the same way by every workload and the trial."""
        if n is None or n >= self.num_test:
            return self
        return replace(self, test_x=self.test_x[:n], test_y=self.test_y[:n])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: ``(C, H, W)`` for images, ``(features,)`` for rows."""
        return tuple(int(d) for d in self.train_x.shape[1:])

    def _inputs(self) -> str:
        if self.image_size:
            return f"images={self.in_channels}x{self.image_size}x{self.image_size}"
        return f"inputs={'x'.join(map(str, self.input_shape))}"

    def __repr__(self) -> str:  # the shapes, not 60,000 images' worth of numbers
        return (
            f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
            f"{self._inputs()}, "
            f"classes={self.num_classes}, augment={self.augment}, device={self.train_x.device})"
        )


@dataclass(frozen=True)
class RawImages:
    """Pixels as stored on disk: uint8 NCHW images, int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
