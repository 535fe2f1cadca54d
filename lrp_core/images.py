"""Reading, writing and resizing images (through Pillow, imported only when called).

Images here are NumPy ``uint8`` arrays laid out as pictures are: ``H x W x 3`` (RGB) or
``H x W`` (grey). Model inputs are batch-first, channels-first float arrays; :func:`to_model_input`
turns an image file into one.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["save_image", "load_image", "upscale", "resize", "to_model_input"]


def _pil():
    from PIL import Image

    return Image


def _as_uint8_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"an image is H x W, H x W x 3 or H x W x 4; got an array of shape "
                         f"{image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"an image is uint8, or float in [0, 1]; got dtype {image.dtype}")
        image = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return image


def save_image(path, image, *, scale: int = 1) -> str:
    """Write ``image`` (``H x W x 3`` or ``H x W`` uint8, or floats in [0, 1]) to ``path``; the
    format follows the extension (PNG recommended: lossless). ``scale`` enlarges each pixel to
    ``scale x scale`` pixels (nearest neighbour: the pixels stay sharp). Returns the path."""
    image = _as_uint8_image(image)
    if scale != 1:
        image = upscale(image, scale)
    path = os.fspath(path)
    _pil().fromarray(image).save(path)
    return path


def load_image(path, mode: str = "RGB") -> np.ndarray:
    """The image file at ``path`` (PNG, JPEG, ... as Pillow reads them) as a uint8 array:
    ``H x W x 3`` for ``mode="RGB"``, ``H x W`` for ``mode="L"`` (grey)."""
    Image = _pil()
    with Image.open(os.fspath(path)) as img:
        img.load()
        # 16/32-bit grey: scale to 8 bits by the maximum
        if img.mode.startswith("I") or img.mode == "F":
            array = np.asarray(img, dtype=np.float64)
            grey = np.rint(np.clip(array / max(array.max(), 1.0), 0, 1) * 255).astype(np.uint8)
            return grey if mode == "L" else np.asarray(Image.fromarray(grey).convert(mode))
        if img.mode in ("RGBA", "LA", "P") and mode in ("RGB", "L"):  # transparent → on white
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        return np.asarray(img.convert(mode))


def upscale(image, factor: int) -> np.ndarray:
    """``image`` with each pixel repeated ``factor`` times along each axis (nearest neighbour)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"the upscaling factor must be a positive integer, got {factor}")
    image = np.asarray(image)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def resize(array, size: tuple[int, int], *, smooth: bool = True) -> np.ndarray:
    """A 2-d float map or a uint8 image resized to ``size = (height, width)`` (bilinear, with
    anti-aliasing when shrinking; nearest neighbour when ``smooth=False``)."""
    Image = _pil()
    array = np.asarray(array)
    height, width = (int(s) for s in size)
    if array.shape[:2] == (height, width):
        return array
    method = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    if array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array).resize((width, height), method))
    if array.ndim != 2:
        raise ValueError(f"resize takes uint8 images or 2-d float maps, "
                         f"got {array.dtype} {array.shape}")
    out = Image.fromarray(np.asarray(array, dtype=np.float32), mode="F").resize((width, height),
                                                                                method)
    return np.asarray(out, dtype=np.float64)


def to_model_input(image: np.ndarray, channels: int, size: tuple[int, int], *, mean=0.0, std=1.0,
                   dtype=np.float32) -> np.ndarray:
    """A uint8 image (``H x W`` or ``H x W x 3``) as one model input ``(channels, height, width)``:
    resized to ``size = (height, width)``, grey for one channel and RGB for three, scaled to
    [0, 1] (pixel / 255), then ``(x − mean) / std`` (scalars, or one value per channel)."""
    image = np.asarray(image)
    if channels == 1 and image.ndim == 3:
        image = np.asarray(_pil().fromarray(image).convert("L"))
    elif channels == 3 and image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif channels not in (1, 3):
        raise ValueError(f"the model takes {channels} input channels; images give 1 (grey) or "
                         "3 (RGB): pass the inputs as .npy arrays instead")
    image = resize(image, size)
    x = image.astype(np.float64) / 255.0
    x = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
    for name, value in (("mean", mean), ("std", std)):
        if value.shape[0] not in (1, channels):
            raise ValueError(f"{name} has {value.shape[0]} values for {channels} channels")
    if np.any(std == 0):
        raise ValueError("std must not be 0")
    return ((x - mean) / std).astype(dtype)
