"""One epoch of batches of a ``Dataset``, shuffled by a generator, with the authors' CIFAR
augmentation (``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip``) done on whole
batches on the tensors' device. The padding is black pixels, i.e. ``-mean/std`` after
normalisation, exactly what cropping before ``Normalize`` gives."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from studies.errors import SpecError
from studies.workloads.dataset import Dataset

CROP_PADDING = 4  # pixels, each side, as in the authors' RandomCrop(32, padding=4)


def steps_per_epoch(ds: Dataset, batch_size: int, *, drop_last: bool = False) -> int:
    """How many training batches ``batches(ds, batch_size=..., drop_last=...)`` yields."""
    _check_batch_size(batch_size)
    full, rest = divmod(ds.num_train, batch_size)
    return full if drop_last or rest == 0 else full + 1


def batches(
    ds: Dataset,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    train: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of ``(images, labels)`` batches.

    Training batches are drawn in an order shuffled with ``generator`` (same seed, same
    epochs) and, when ``ds.augment``, randomly cropped and flipped as whole batches. Test
    batches come in order, unaugmented (views of ``ds.test_x``, no copy).
    """
    _check_batch_size(batch_size)
    x, y = (ds.train_x, ds.train_y) if train else (ds.test_x, ds.test_y)
    n = int(x.shape[0])
    stop = n - n % batch_size if drop_last else n
    if not train:
        for start in range(0, stop, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    order = torch.randperm(n, generator=generator, device=_generator_device(generator))
    order = order.to(x.device)
    black = _black(ds)  # made once per epoch on the data's device, not once per batch
    fill = None if black is None else torch.tensor(black, dtype=x.dtype, device=x.device)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        bx = x[idx]
        if ds.augment:
            bx = augment_batch(bx, padding=CROP_PADDING, fill=fill, generator=generator)
        yield bx, y[idx]


def augment_batch(
    x: Tensor,
    *,
    padding: int = CROP_PADDING,  # pixels on each side
    fill: Sequence[float] | Tensor | None = None,  # per-channel padding value; None: zeros
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random crop (with ``padding`` pixels of ``fill`` around) then random horizontal flip,
    drawn independently for every image of the NCHW batch ``x``, in a few tensor ops."""
    b, c, h, w = x.shape
    padded = x.new_empty((b, c, h + 2 * padding, w + 2 * padding))
    if fill is None:
        padded.zero_()
    else:
        fill_values = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
        padded.copy_(fill_values.view(1, c, 1, 1).expand_as(padded))
    padded[:, :, padding : padding + h, padding : padding + w] = x
    gen_device = _generator_device(generator)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    flip = torch.rand((b,), generator=generator, device=gen_device) < 0.5
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    # Every (h, w) window of the padded batch as a view (b, c, 2p+1, 2p+1, h, w); one
    # indexing op copies out each image's own window.
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    out = windows[torch.arange(b, device=x.device), :, dy, dx]
    # torch.where, not boolean-mask assignment: a mask makes the GPU wait for the host.
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


def _black(ds: Dataset) -> tuple[float, ...] | None:
    """The normalised value of a black pixel, per channel (None: zeros, no statistics)."""
    if not ds.mean or not ds.std:
        return None
    return tuple(-m / s for m, s in zip(ds.mean, ds.std, strict=True))


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise SpecError(f"must be a positive number, got {batch_size}", field="batch_size")
