"""BYOL's photometric augmentations T / T' as batched torch ops, for views made on the GPU (issue 18, item 4).

With ``RobustLoadImage(device_decode=True)`` the data workers only draw the random parameters of the view pipelines
(multisiam_mm.datasets.transforms.photometric_draws, with the transforms' own samplers) and the data preprocessor
applies them here, to the views it cut from the frames it decoded. Each op reproduces, on integer-valued float
tensors, the function the CPU pipeline calls for the same parameters, rounding included, so that a view differs from
the CPU one only where libjpeg, cv2's fixed-point maths or Pillow's box blur round differently (tests/test_device_decode
.py compares each op with the library it stands for):

=============  ====================================================================================================
kind           the CPU transform and the function it calls
=============  ====================================================================================================
BRIGHTNESS     mmpretrain ColorJitter (backend 'pillow'): PIL ``ImageEnhance.Brightness``: blend of black and the view
CONTRAST       ``ImageEnhance.Contrast``: blend of the view's mean luma (rounded) and the view
SATURATION     ``ImageEnhance.Color``: blend of the view's luma (PIL ``convert('L')``) and the view
HUE            ColorJitter's hue: PIL HSV, hue channel shifted by ``uint8(h * 255)``, back to RGB (0.3 % of values
               differ, by a few levels, where the HSV round trip rounds differently)
GRAY           mmcv RandomGrayscale: weighted channel sum (weights normalised), truncated to uint8, 3 channels kept
BLUR           mmpretrain GaussianBlur: PIL ``ImageFilter.GaussianBlur(radius)``: 3 passes of an extended box blur
               per axis, edges extended, rounded to uint8 after each pass (Pillow's radius and 24-bit weights;
               its passes still round differently: within 3 levels, about 0.5 on average where the blur acts)
SOLARIZE       mmcv ``solarize``: values >= thr become 255 - value
=============  ====================================================================================================

Tensors are (N, 3, H, W) float, BGR (the channel order of the CPU pipeline, whose preprocessor converts to RGB
last), values in 0..255; parameters are (N,) per sample (N, 3 for GRAY's weights in BGR order). A draw table (N, J, 4)
holds J steps per view: column 0 the kind (0: nothing), columns 1-3 its parameters; :func:`apply_draws` applies the
steps in order, each to the samples whose step has that kind.
"""
import math
from typing import Callable, Dict

import torch
import torch.nn.functional as F

NONE, BRIGHTNESS, CONTRAST, SATURATION, HUE, GRAY, BLUR, SOLARIZE = range(8)
KIND_NAMES = {NONE: 'none', BRIGHTNESS: 'brightness', CONTRAST: 'contrast', SATURATION: 'saturation', HUE: 'hue',
              GRAY: 'gray', BLUR: 'blur', SOLARIZE: 'solarize'}
_LUMA_BGR = (7471, 38470, 19595)  # PIL's convert('L'): (R 19595 + G 38470 + B 7471 + 2^15) >> 16
BLUR_PASSES = 3  # Pillow's GaussianBlur: three box blurs per axis


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, 1, 1, 1)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """Truncate to 0..255 as a C cast of a value clipped to [0, 255] does (Pillow's blend, numpy's astype)."""
    return x.clamp(0, 255).floor()


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) PIL luma of BGR (N, 3, H, W): ``convert('L')``, fixed point, rounded."""
    w = x.new_tensor(_LUMA_BGR).reshape(1, 3, 1, 1)
    return torch.floor(((x * w).sum(1, keepdim=True) + 32768) / 65536)


def blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.blend(degenerate, x, factor)``: degenerate + factor (x - degenerate) in float32 (as Pillow's C
    code: a factor such as 1.4 is 1.39999998 there, which decides where 5 x 1.4 truncates), truncated to uint8."""
    d = degenerate.float()
    return _uint8(d + _per_sample(factor).float() * (x.float() - d)).to(x.dtype)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Brightness(view).enhance(factor)``."""
    return blend(torch.zeros_like(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Contrast(view).enhance(factor)``: the degenerate image is the mean luma, rounded."""
    mean = torch.floor(luma(x).mean((1, 2, 3), keepdim=True) + 0.5)
    return blend(mean.expand_as(x), x, factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Color(view).enhance(factor)``: the degenerate image is the luma in every channel."""
    return blend(luma(x).expand_as(x), x, factor)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> HSV of BGR (N, 3, H, W): (N, 3, H, W) (H, S, V), uint8-valued, hue on 0..255.

    The precision follows Pillow's C code: the channel ratios in float32, the hue wrap and the scaling to 0..255 in
    double (its constants are doubles), truncated.
    """
    x = x.float()
    b, g, r = x.unbind(1)
    maxc, minc = x.max(1).values, x.min(1).values
    cr = maxc - minc
    grey = cr == 0
    safe = torch.where(grey, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(r == maxc, bc - gc, torch.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    s = cr / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    h = torch.fmod(h.double() / 6.0 + 1.0, 1.0)
    h = torch.where(grey, torch.zeros_like(h), _uint8(h * 255.0))
    s = torch.where(grey, torch.zeros_like(h), _uint8(s.double() * 255.0))
    return torch.stack((h, s, maxc.double()), 1)


def _round(x: torch.Tensor) -> torch.Tensor:
    """C's round() (half away from zero) of values >= 0."""
    return torch.floor(x + 0.5)


def _hsv_to_bgr(hsv: torch.Tensor) -> torch.Tensor:
    """Pillow's HSV -> RGB of (N, 3, H, W) (H, S, V) uint8-valued channels (double), returned as BGR."""
    h, s, v = hsv.unbind(1)
    fh = h * 6.0 / 255.0
    sector = torch.floor(fh)
    f = (fh - sector).float().double()  # Pillow keeps f and fs in floats
    fs = (s / 255.0).float().double()
    p = _uint8(_round(v * (1.0 - fs)))
    q = _uint8(_round(v * (1.0 - fs * f)))
    t = _uint8(_round(v * (1.0 - fs * (1.0 - f))))
    sector = sector.long() % 6
    # (r, g, b) per sector, as Pillow's hsv2rgb switch
    rgb = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    out = torch.zeros_like(hsv)
    for k, (r, g, b) in rgb.items():
        out = torch.where((sector == k).unsqueeze(1), torch.stack((b, g, r), 1), out)
    grey = (s == 0).unsqueeze(1)
    return torch.where(grey, v.unsqueeze(1).expand_as(out), out)


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """mmpretrain ColorJitter's hue (backend 'pillow'): HSV hue + ``uint8(shift * 255)`` modulo 256, ``shift`` in
    [-0.5, 0.5] (numpy's uint8 of a negative value wraps, as the modulo does here)."""
    hsv = _rgb_to_hsv(x)
    step = torch.trunc(shift.double() * 255.0)  # np.uint8(float) truncates toward zero, then wraps
    h = torch.remainder(hsv[:, 0] + step.reshape(-1, 1, 1), 256.0)
    return _hsv_to_bgr(torch.stack((h, hsv[:, 1], hsv[:, 2]), 1)).to(x.dtype)


def gray(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mmcv ``RandomGrayscale(keep_channels=True)``: sum of ``weights`` (N, 3) (BGR, normalised) x channels,
    truncated to uint8, in all three channels."""
    y = torch.floor((x * weights.reshape(-1, 3, 1, 1)).sum(1, keepdim=True))
    return y.expand_as(x).clone()


def box_radius(sigma: float, passes: int = BLUR_PASSES) -> float:
    """Pillow's extended-box radius for a Gaussian of standard deviation ``sigma`` made of ``passes`` box blurs."""
    sigma2 = sigma * sigma / passes
    big = math.sqrt(12.0 * sigma2 + 1.0)
    lo = math.floor((big - 1.0) / 2.0)
    a = (2 * lo + 1) * (lo * (lo + 1) - 3.0 * sigma2)
    a /= 6.0 * (sigma2 - (lo + 1) * (lo + 1))
    return lo + a


def _box_kernel(radius: float) -> torch.Tensor:
    """1-D weights of an extended box of fractional ``radius`` in Pillow's 24-bit fixed point: ww inside, fw at the
    two ends (the fractional part), summing to 1."""
    lo = int(math.floor(radius))
    ww = int((1 << 24) / (2.0 * radius + 1.0))
    fw = ((1 << 24) - (2 * lo + 1) * ww) // 2
    w = torch.full((2 * lo + 3,), float(ww), dtype=torch.float64)
    w[0] = w[-1] = fw
    return w / (1 << 24)


def _box_pass(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """One box blur of (1, C, H, W) ``x`` along ``dim`` (3: x, 2: y), edges extended, rounded to uint8."""
    pad = kernel.numel() // 2
    k = kernel.to(x).reshape(1, 1, *((1, -1) if dim == 3 else (-1, 1))).expand(x.shape[1], 1, -1, -1)
    padded = F.pad(x, (pad, pad, 0, 0) if dim == 3 else (0, 0, pad, pad), mode='replicate')
    return torch.floor(F.conv2d(padded, k, groups=x.shape[1]) + 0.5).clamp(0, 255)


def gaussian_blur(x: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageFilter.GaussianBlur(radius)`` per sample (``radius`` is the Gaussian's standard deviation)."""
    out = []
    for view, sigma in zip(x, radius.tolist()):
        view = view[None]
        if sigma > 0:
            kernel = _box_kernel(box_radius(sigma))
            for dim in (3, 2):
                for _ in range(BLUR_PASSES):
                    view = _box_pass(view, kernel, dim)
        out.append(view)
    return torch.cat(out)


def solarize(x: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """mmcv ``solarize``: ``x if x < thr else 255 - x``."""
    return torch.where(x < _per_sample(thr), x, 255.0 - x)


OPS: Dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    BRIGHTNESS: brightness, CONTRAST: contrast, SATURATION: saturation, HUE: hue, BLUR: gaussian_blur,
    SOLARIZE: solarize}


def apply_draws(x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Apply a draw table (N, J, 4) to BGR views (N, 3, H, W): step j of sample n is kind ``draws[n, j, 0]`` with
    parameters ``draws[n, j, 1:]``; kind 0 leaves the sample as it is."""
    if draws.dim() != 3 or draws.shape[0] != x.shape[0] or draws.shape[2] != 4:
        raise ValueError(f'apply_draws: draws must be (N, J, 4) for {x.shape[0]} views, got {tuple(draws.shape)}')
    draws = draws.to(x.device)
    for j in range(draws.shape[1]):
        kinds = draws[:, j, 0].long()
        for kind in kinds.unique().tolist():
            if kind == NONE:
                continue
            if kind not in KIND_NAMES:
                raise ValueError(f'apply_draws: unknown kind {kind} in step {j}')
            rows = (kinds == kind).nonzero().squeeze(1)
            params = draws[rows, j, 1:]
            done = gray(x[rows], params) if kind == GRAY else OPS[kind](x[rows], params[:, 0])
            x = x.index_copy(0, rows, done)
    return x
