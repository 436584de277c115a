"""Feature alignment of MultiSiam (Sec. 3.2, eqs. 3-7; Table 2b): recover the cell-to-cell correspondence.

Modes:
    'roi'            R = RoIAlign(G, B), R' = RoIAlign(G', B'): B, B' the intersection in each view's frame
                     (eqs. 3-4), output the size of the input map;
    'offset'         R = concat(G, ΔC), R' = G' with ΔC the offset map normalised by the view size (eqs. 5-7);
    'offset_nonorm'  as 'offset', ΔC normalised by the original image size instead (see geometry.offset_map);
    'none'           R = G, R' = G' (no alignment).
Both maps are flipped back first (Sec. 4.1: "We flip back the projected 2D feature map before feature alignment").
"""
from typing import Tuple

import torch
from torch import Tensor

from .geometry import box_in_view, flip_back, intersection_box, offset_map, roi_align_intersection

ALIGNMENTS = ('roi', 'offset', 'offset_nonorm', 'none')


def offset_channels(mode: str) -> int:
    """Channels that alignment ``mode`` appends to the online map R (2 for ΔC, else 0)."""
    return 2 if mode.startswith('offset') else 0


def align_pair(G: Tensor, G_t: Tensor, view: Tensor, view_t: Tensor, flip: Tensor, flip_t: Tensor,
               image_size: Tensor, mode: str) -> Tuple[Tensor, Tensor]:
    """Align the online map G of one view with the target map G' of the other.

    G: (B, C, H, W) online; G_t: (B, D, H, W) target; view, view_t: (B, 4) crop boxes (x1, y1, x2, y2) in original
    image pixels; flip, flip_t: (B,) bool; image_size: (B, 2) original (W, H) in pixels (for 'offset_nonorm').
    Returns R: (B, C (+2), H, W) and R': (B, D, H, W).
    """
    if mode not in ALIGNMENTS:
        raise ValueError(f'alignment must be one of {ALIGNMENTS}, got {mode!r}')
    G, G_t = flip_back(G, flip), flip_back(G_t, flip_t)
    if mode == 'none':
        return G, G_t
    H, W = G.shape[-2:]
    if mode == 'roi':
        inter = intersection_box(view, view_t)
        R = roi_align_intersection(G, box_in_view(inter, view, None), (H, W))
        R_t = roi_align_intersection(G_t, box_in_view(inter, view_t, None), G_t.shape[-2:])
        return R, R_t
    dC = offset_map(view, view_t, H, W, normalize=(mode == 'offset'), image_size=image_size)
    return torch.cat([G, dC.to(G.dtype)], dim=1), G_t
