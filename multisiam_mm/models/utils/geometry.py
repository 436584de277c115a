"""View geometry shared by MultiSiam, DenseSiam and Odin: the only module that turns crop records into coordinates.

Conventions (every function below relies on them; tests/test_geometry.py checks them on a coordinate-encoding image):

* **Box**: ``(x1, y1, x2, y2)`` in ORIGINAL image pixels, continuous coordinates: pixel ``k`` covers ``[k, k + 1)`` and
  has its centre at ``k + 0.5``. A crop of rows ``i .. i+h-1`` and columns ``j .. j+w-1`` is the box
  ``(j, i, j + w, i + h)``. Any other unit works too (e.g. boxes divided by the image size), as long as all boxes of a
  call share it; only :func:`offset_map` with ``normalize=False`` needs the image size in the same unit.
* **View**: a box plus a horizontal-flip flag (``(B,)`` bool tensor; ``None`` means "not flipped").
  A view resized to ``S x S`` shows at output pixel ``u`` (centre ``u + 0.5``) the original
  ``x = x1 + (u + 0.5) * (x2 - x1) / S``; a flipped view shows at ``u`` what the unflipped one shows at ``S - 1 - u``.
* **View frame**: ``[0, 1]^2`` over the view *as displayed*: ``n = (x - x1) / (x2 - x1)``, and ``n -> 1 - n`` for x
  when the view is flipped.
* **Feature map** ``H x W`` over a view: cell ``(i, j)`` has its centre at ``((j + 0.5) / W, (i + 0.5) / H)`` in the
  view frame (the resize convention above at any stride; exact for average pooling of the resized view).
* **grid_sample coordinates**: ``g = 2 n - 1`` with ``align_corners=False`` (``-1`` / ``+1`` are the outer edges).
* Coordinate maps and points store ``(x, y)`` in this order (channel 0 is x).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

Size2d = Union[int, Tuple[int, int]]

# RoIAlign samples 2 x 2 points per output bin (the 4 points of the Mask R-CNN paper). A fixed ratio keeps the cost
# independent of the box size, and since both views sample the same relative positions of the same intersection box,
# R and R' are computed from the same original-image points whatever the ratio.
ROI_SAMPLING_RATIO = 2


def _pair(size: Size2d) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _area(box: Tensor) -> Tensor:
    return (box[..., 2] - box[..., 0]).clamp_min(0) * (box[..., 3] - box[..., 1]).clamp_min(0)


def _expand_views(view: Tensor, ndim: int) -> Tuple[Tensor, Tensor]:
    """Origin (x1, y1) and size (w, h) of ``view`` (B, 4), each shaped (B, 1, ..., 1, 2) for ``ndim``-d points."""
    shape = (view.shape[0],) + (1,) * (ndim - 2) + (2,)
    return view[:, :2].reshape(shape), (view[:, 2:] - view[:, :2]).reshape(shape)


def _flip_x(n: Tensor, flip: Optional[Tensor]) -> Tensor:
    """``x -> 1 - x`` on the last-dim x of view-frame points (B, ..., 2) where ``flip`` (B,) is set."""
    if flip is None:
        return n
    flip = flip.reshape((-1,) + (1,) * (n.dim() - 2))
    return torch.stack((torch.where(flip, 1 - n[..., 0], n[..., 0]), n[..., 1]), dim=-1)


def to_view_frame(points: Tensor, view: Tensor, flip: Optional[Tensor] = None) -> Tensor:
    """Original-image points (B, ..., 2) -> the same points in the view frame [0, 1]^2 (flip-aware), (B, ..., 2)."""
    origin, size = _expand_views(view, points.dim())
    return _flip_x((points - origin) / size, flip)


def from_view_frame(n: Tensor, view: Tensor, flip: Optional[Tensor] = None) -> Tensor:
    """View-frame points (B, ..., 2) (flip-aware) -> original-image points (B, ..., 2); inverse of to_view_frame."""
    origin, size = _expand_views(view, n.dim())
    return origin + _flip_x(n, flip) * size


def box_iou_pairs(a: Tensor, b: Tensor) -> Tensor:
    """IoU of corresponding boxes: a, b (B, 4) -> (B,). Disjoint boxes give 0."""
    inter = _area(intersection_box(a, b))
    return inter / (_area(a) + _area(b) - inter).clamp_min(torch.finfo(a.dtype).tiny)


def intersection_box(a: Tensor, b: Tensor) -> Tensor:
    """Overlap of paired boxes, (B, 4) x 2 -> (B, 4); disjoint boxes give a zero-area box (x2 = x1 or y2 = y1)."""
    lo = torch.maximum(a[:, :2], b[:, :2])
    hi = torch.maximum(torch.minimum(a[:, 2:], b[:, 2:]), lo)
    return torch.cat((lo, hi), dim=1)


def spanning_box(a: Tensor, b: Tensor) -> Tensor:
    """Smallest box covering both boxes (Odin's spanning view), (B, 4) x 2 -> (B, 4)."""
    return torch.cat((torch.minimum(a[:, :2], b[:, :2]), torch.maximum(a[:, 2:], b[:, 2:])), dim=1)


def box_in_view(box: Tensor, view: Tensor, flip: Optional[Tensor] = None) -> Tensor:
    """A box given in original coordinates, expressed in a view's frame: (B, 4) -> (B, 4), normalised ``x1 <= x2``.

    With ``flip`` (B,) the frame is the flipped view as displayed: x -> 1 - x and the two x-corners swap.
    ``box_in_view(intersection_box(v, v'), v)`` is MultiSiam's relative box B of eqs. 3-4.
    """
    corners = to_view_frame(box.reshape(-1, 2, 2), view, flip)  # (B, 2 corners, xy)
    return torch.cat((corners.amin(dim=1), corners.amax(dim=1)), dim=1)


def cell_coords(view: Tensor, H: int, W: int, flip: Optional[Tensor] = None) -> Tensor:
    """coord(G_ij): original-image (x, y) of every cell centre of an H x W map over the view, (B, 4) -> (B, 2, H, W).

    With ``flip`` the map is the flipped view as displayed (before flip_back).
    """
    ys = (torch.arange(H, dtype=view.dtype, device=view.device) + 0.5) / H
    xs = (torch.arange(W, dtype=view.dtype, device=view.device) + 0.5) / W
    n = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), dim=-1)  # (H, W, 2)
    return from_view_frame(n.expand(view.shape[0], H, W, 2), view, flip).permute(0, 3, 1, 2)


def flip_back(x: Tensor, flip: Tensor) -> Tensor:
    """Undo the horizontal flip of the maps whose view was flipped: x (B, C, H, W), flip (B,) bool -> (B, C, H, W)."""
    return torch.where(flip.reshape(-1, 1, 1, 1), x.flip(-1), x)


def offset_map(view_online: Tensor, view_target: Tensor, H: int, W: int, normalize: bool = True,
               image_size: Optional[Tensor] = None) -> Tensor:
    """MultiSiam offset map ΔC (eq. 5) from the online map G to the target map G', both flipped back: (B, 2, H, W).

    ``ΔC_ij = (coord(G'_ij) - coord(G_ij)) / (coord(G_HW) - coord(G_11))``, channels (x, y). The denominator is the
    centre-to-centre extent of the online map, ``(x2 - x1)(W - 1)/W`` and ``(y2 - y1)(H - 1)/H``, i.e. "normalised by
    the size of v"; it needs ``H, W >= 2``.

    ``normalize=False`` is the 'offset nonorm' ablation (Table 2b). The paper only says "absolute values"; we divide
    by the ORIGINAL image size ``image_size`` (B, 2) as (W, H), like the (x, y) channels, instead of by the view
    extent, so the offsets stay in image units of magnitude O(1) rather than hundreds of pixels. ``image_size`` is
    unused when ``normalize`` is True.

    Args:
        view_online, view_target: (B, 4) boxes of v (online, G) and v' (target, G').
        H, W: size of the feature maps.
    """
    delta = cell_coords(view_target, H, W) - cell_coords(view_online, H, W)
    if normalize:
        if H < 2 or W < 2:
            raise ValueError(f'offset_map: eq. 5 normalises by coord(G_HW) - coord(G_11), which needs H, W >= 2, '
                             f'got H={H}, W={W}')
        extent = (view_online[:, 2:] - view_online[:, :2]) * delta.new_tensor([(W - 1) / W, (H - 1) / H])
    elif image_size is None:
        raise ValueError('offset_map: normalize=False divides by the original image size; pass image_size (B, 2)')
    else:
        extent = image_size.to(delta)
    return delta / extent[:, :, None, None]


def roi_align_intersection(x: Tensor, box_norm: Tensor, out_size: Size2d) -> Tensor:
    """MultiSiam RoI alignment (eqs. 3-4): R = RoIAlign(x, B), x (B, C, H, W), box_norm (B, 4) -> (B, C, h, w).

    ``box_norm`` is in the frame of ``x`` (see :func:`box_in_view`; pass flip=None for flipped-back maps). Uses
    torchvision's RoIAlign with ``aligned=True`` (cell j covers [j, j+1) of the box scaled by W, the convention of
    this module) and ``sampling_ratio=ROI_SAMPLING_RATIO``.
    """
    B, _, H, W = x.shape
    batch_idx = torch.arange(B, dtype=x.dtype, device=x.device)[:, None]
    rois = torch.cat((batch_idx, box_norm.to(x.dtype) * x.new_tensor([W, H, W, H])), dim=1)
    return roi_align(x, rois, output_size=_pair(out_size), spatial_scale=1.0,
                     sampling_ratio=ROI_SAMPLING_RATIO, aligned=True)


def points_to_grid(points: Tensor, view: Tensor, flip: Optional[Tensor] = None) -> Tensor:
    """Original-image points (B, ..., 2) -> grid_sample coordinates in [-1, 1] of a map over the view (flip-aware)."""
    return 2 * to_view_frame(points, view, flip) - 1


def grid_points_in_intersection(view_a: Tensor, view_b: Tensor, flip_a: Optional[Tensor],
                                flip_b: Optional[Tensor], G: int) -> Tuple[Tensor, Tensor]:
    """DenseSiam PixSim grid: G x G uniform points in the overlap, located in each view's map, (B, G*G, 2) x 2.

    The points are the cell centres of a G x G grid over ``intersection_box(view_a, view_b)``; both outputs sample the
    SAME original-image locations. They address the maps as displayed (not flipped back), e.g.
    ``F.grid_sample(feat_a, grid_a[:, None], align_corners=False)`` -> (B, C, 1, G*G).
    """
    points = cell_coords(intersection_box(view_a, view_b), G, G).flatten(2).transpose(1, 2)  # (B, G*G, 2)
    return points_to_grid(points, view_a, flip_a), points_to_grid(points, view_b, flip_b)


def map_masks_to_view(masks: Tensor, source_box: Tensor, view: Tensor, flip: Optional[Tensor],
                      out_size: Size2d, mode: str = 'bilinear') -> Tensor:
    """Resample masks defined over an unflipped source box into a view's map (Odin), (B, M, h, w) -> (B, M, ho, wo).

    Each output cell (i, j) of the view as displayed (flip-aware) takes the mask value at its original-image location
    (bilinear or nearest ``mode``); the border value is used between the source's outermost cell centres and its edge,
    and 0 outside ``source_box``. Odin: masks computed on the spanning view (``source_box = spanning_box(v1, v2)``)
    mapped into each augmented view.
    """
    ho, wo = _pair(out_size)
    grid = points_to_grid(cell_coords(view, ho, wo, flip).permute(0, 2, 3, 1), source_box)  # (B, ho, wo, 2)
    out = F.grid_sample(masks, grid.to(masks.dtype), mode=mode, padding_mode='border', align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1)[:, None]  # (B, 1, ho, wo)
    return out * inside.to(out.dtype)
