"""The dataset as the trainers see it: ``Dataset``, a whole dataset in memory as tensors, and
``RawImages``, the pixels as a reader finds them on disk (uint8, before normalisation)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

SUBSET_SEED = 0  # the fixed order of image-folder training images, and the digits split


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole dataset in memory: images normalised float32 NCHW, labels int64; or text
    (``shakespeare``): int64 windows of characters ``[N, context]`` and their next
    characters, ``image_size`` the context, ``num_classes`` the vocabulary.

    ``mean``/``std`` are the per-channel statistics the images were normalised with (so that
    augmentation can pad with black and figures can undo the normalisation).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    in_channels: int
    image_size: int
    augment: bool
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_x.shape[0])

    def __repr__(self) -> str:  # the shapes, not 60,000 images' worth of numbers
        if self.train_x.dim() == 2:  # text: windows of characters
            return (
                f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
                f"context={self.image_size}, vocabulary={self.num_classes}, "
                f"device={self.train_x.device})"
            )
        return (
            f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
            f"images={self.in_channels}x{self.image_size}x{self.image_size}, "
            f"classes={self.num_classes}, augment={self.augment}, device={self.train_x.device})"
        )


@dataclass(frozen=True)
class RawImages:
    """Pixels as stored on disk: uint8 NCHW images, int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
