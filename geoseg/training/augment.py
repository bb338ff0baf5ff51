"""Training augmentation of a normalized chip and its labels: geometry (flips, 90° rotations, scale jitter) and
radiometry (brightness, per-band gain and offset, Gaussian noise).

Geometry moves labels with their pixels: labels are resampled nearest (centre-aligned, as the bands are
bilinearly), and pixels a zoom-out leaves empty are zero (the band mean) with the ignore label 255.

Radiometry acts in the units the model sees (normalized bands, ``(x - mean) / std``) but models changes of the
raw values: a gain ``g`` scales reflectance about zero, as illumination, calibration or haze do, so in normalized
units it is ``g * z + (g - 1) * mean / std``, which also moves the band's level (a gain of 0.8 on a band with
mean 1450 and std 150 moves it by about 2 std). Scaling the normalized value alone (``brightness``) changes
contrast about the band mean and never moves it. Offsets and noise are in units of each band's std, so one
number suits every band and sensor. Nothing is drawn for a jitter that is off, so a config without them gets
the same random stream (and the same model) as before they existed.

Example:
    >>> rng = np.random.default_rng(0)
    >>> chip, labels = np.zeros((2, 8, 8), np.float32), np.zeros((8, 8), np.uint8)
    >>> d, lab = augment(chip, labels, rng, flips=True, rot90=True, scale=0.2, brightness=0.0, gain=0.2,
    ...                  level=np.array([9.5, 6.6]))
    >>> d.shape, lab.shape, d.dtype
    ((2, 8, 8), (8, 8), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

from geoseg.core.classes import IGNORE_INDEX

__all__ = ["augment", "radiometric", "scale_jitter"]


def augment(
    data: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    flips: bool,
    rot90: bool,
    scale: float,
    brightness: float,
    gain: float = 0.0,
    band_gain: float = 0.0,
    offset: float = 0.0,
    noise: float = 0.0,
    level: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° rotations, scale jitter, then brightness and radiometric jitter of a normalized chip.

    ``level`` is each band's ``mean / std`` (where raw zero lies in normalized units; zero when not given). No
    change mixes bands.

    Example:
        >>> d, l = augment(np.zeros((2, 8, 8), np.float32), np.zeros((8, 8), np.uint8),
        ...                np.random.default_rng(0), True, True, 0.0, 0.0)
        >>> d.shape, l.shape
        ((2, 8, 8), (8, 8))
    """
    if flips and rng.random() < 0.5:
        data, labels = data[:, :, ::-1], labels[:, ::-1]
    if flips and rng.random() < 0.5:
        data, labels = data[:, ::-1], labels[::-1]
    if rot90:
        k = int(rng.integers(4))
        if k:
            data, labels = np.rot90(data, k, axes=(1, 2)), np.rot90(labels, k)
    if scale > 0:
        data, labels = scale_jitter(data, labels, float(rng.uniform(1 - scale, 1 + scale)), rng)
    if brightness > 0:
        data = data * float(rng.uniform(1 - brightness, 1 + brightness)) + float(rng.uniform(-brightness, brightness))
    if gain > 0 or band_gain > 0 or offset > 0 or noise > 0:
        data = radiometric(data, rng, gain, band_gain, offset, noise, level)
    return np.ascontiguousarray(data, dtype=np.float32), np.ascontiguousarray(labels)


def radiometric(
    data: np.ndarray,
    rng: np.random.Generator,
    gain: float,
    band_gain: float,
    offset: float,
    noise: float,
    level: np.ndarray | None = None,
) -> np.ndarray:
    """A normalized chip ``(C, H, W)`` as if its raw bands had been scaled by ``g`` and shifted by ``o`` (in std),
    plus Gaussian noise of ``noise`` std per pixel.

    ``g`` is one factor in ``[1 - gain, 1 + gain]`` for the whole chip times one in ``[1 - band_gain,
    1 + band_gain]`` per band; ``o`` lies in ``[-offset, offset]`` per band; ``level`` is each band's
    ``mean / std``, where a raw value of zero lies (zero when not given).

    Example:
        >>> z = np.zeros((1, 2, 2), np.float32)  # every pixel at the band mean, which is 10 std above raw zero
        >>> rng = np.random.default_rng(0)  # draws a gain of 1.0548
        >>> radiometric(z, rng, 0.2, 0.0, 0.0, 0.0, level=np.array([10.0]))[0, 0, 0].round(3)  # 0.0548 * 10 std up
        np.float32(0.548)
    """
    bands = data.shape[0]
    g = np.ones(bands)
    if gain > 0:
        g = g * rng.uniform(1 - gain, 1 + gain)
    if band_gain > 0:
        g = g * rng.uniform(1 - band_gain, 1 + band_gain, bands)
    shift = (g - 1) * (np.zeros(bands) if level is None else np.asarray(level, dtype=np.float64))
    if offset > 0:
        shift = shift + rng.uniform(-offset, offset, bands)
    out = data * g.astype(np.float32)[:, None, None] + shift.astype(np.float32)[:, None, None]
    if noise > 0:
        out = out + rng.normal(0.0, noise, data.shape).astype(np.float32)
    return out.astype(np.float32, copy=False)


def scale_jitter(data: np.ndarray, labels: np.ndarray, factor: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zoom a chip by ``factor`` about a random point, keeping its size: bands bilinear, labels nearest.

    Zooming in (``factor > 1``) crops a random part of the enlarged chip; zooming out places the smaller chip at a
    random place, and the pixels around it are 0 (the band mean) with the ignore label. Both resamplings are
    centre-aligned, so a label stays on the pixels it was drawn on.

    Example:
        >>> lab = np.kron(np.eye(2, dtype=np.uint8), np.ones((4, 4), np.uint8))
        >>> d, l = scale_jitter(lab[None].astype(np.float32), lab, 0.5, np.random.default_rng(0))
        >>> int((l != 255).sum()), bool(((d[0] > 0.5) == (l == 1))[l != 255].all())
        (16, True)
    """
    import torch
    import torch.nn.functional as F

    h, w = labels.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    bands = torch.from_numpy(np.ascontiguousarray(data))[None]
    d = F.interpolate(bands, size=(nh, nw), mode="bilinear", align_corners=False)[0].numpy()
    ids = torch.from_numpy(np.ascontiguousarray(labels))[None, None].float()
    lab = F.interpolate(ids, size=(nh, nw), mode="nearest-exact")[0, 0].numpy().astype(np.uint8)
    out_d = np.zeros_like(data)
    out_l = np.full_like(labels, IGNORE_INDEX)
    (ys, yd), (xs, xd) = _place(nh, h, rng), _place(nw, w, rng)
    src, dst = (slice(ys, ys + min(h, nh)), slice(xs, xs + min(w, nw))), (slice(yd, yd + min(h, nh)), slice(xd, xd + min(w, nw)))
    out_d[:, dst[0], dst[1]] = d[:, src[0], src[1]]
    out_l[dst] = lab[src]
    return out_d, out_l


def _place(resized: int, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Start of the kept part in the resized chip and of its place in the output, along one axis."""
    start = int(rng.integers(0, abs(resized - size) + 1))
    return (start, 0) if resized > size else (0, start)
