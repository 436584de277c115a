"""View geometry: unit cases, and the coordinate-encoding contract through IoUPairCrop.

The coordinate-encoding image holds, in channels 0 and 1, the original x and y of every pixel centre. After
IoUPairCrop (crop, bicubic resize, flip) each view -- and any average-pooled "feature map" of it -- holds in every
cell the original coordinates it sees, so every geometry function can be checked against the pixels themselves.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multisiam_mm.datasets.transforms import IoUPairCrop
from multisiam_mm.models.utils.geometry import (
    box_in_view,
    box_iou_pairs,
    cell_coords,
    flip_back,
    grid_points_in_intersection,
    intersection_box,
    map_masks_to_view,
    offset_map,
    roi_align_intersection,
    spanning_box,
)

IMG_H, IMG_W = 427, 640
SIZE = 224
SEEDS = range(12)


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------- unit cases
def test_box_algebra():
    a = _t([[0, 0, 100, 100], [10, 10, 20, 20], [0, 0, 10, 10]])
    b = _t([[50, 0, 150, 100], [30, 30, 40, 40], [0, 0, 10, 10]])
    torch.testing.assert_close(box_iou_pairs(a, b), _t([50 * 100 / (2e4 - 5e3), 0, 1]))
    torch.testing.assert_close(intersection_box(a, b), _t([[50, 0, 100, 100], [30, 30, 30, 30], [0, 0, 10, 10]]))
    torch.testing.assert_close(spanning_box(a, b), _t([[0, 0, 150, 100], [10, 10, 40, 40], [0, 0, 10, 10]]))


def test_box_in_view_flip_mirrors_and_keeps_order():
    view = _t([[100, 50, 300, 150]] * 2)
    box = _t([[150, 75, 200, 150]] * 2)
    out = box_in_view(box, view, torch.tensor([False, True]))
    torch.testing.assert_close(out, _t([[0.25, 0.25, 0.5, 1.0], [0.5, 0.25, 0.75, 1.0]]))


def test_cell_coords_and_flip_back():
    view = _t([[10, 20, 50, 40], [10, 20, 50, 40]])
    flip = torch.tensor([False, True])
    c = cell_coords(view, H=2, W=4, flip=flip)  # cells 10 px wide and tall
    torch.testing.assert_close(c[0, 0, 0], _t([15, 25, 35, 45]))
    torch.testing.assert_close(c[1, 0, 0], _t([45, 35, 25, 15]))
    torch.testing.assert_close(c[:, 1, :, 0], _t([[25, 35], [25, 35]]))
    torch.testing.assert_close(flip_back(c, flip), cell_coords(view, 2, 4))


def test_offset_map_eq5_and_nonorm():
    online = _t([[0, 0, 100, 50]])
    target = _t([[20, 10, 220, 60]])  # twice as wide, shifted
    delta = offset_map(online, target, H=2, W=2)
    # online cell centres x: 25, 75 ; target: 70, 170 ; extent coord(G_HW) - coord(G_11) = 50 (x), 25 (y)
    torch.testing.assert_close(delta[0, 0], _t([[45 / 50, 95 / 50]] * 2))
    torch.testing.assert_close(delta[0, 1], _t([[10 / 25] * 2] * 2))
    raw = offset_map(online, target, 2, 2, normalize=False, image_size=_t([[1000, 500]]))
    torch.testing.assert_close(raw[0, 0], _t([[45 / 1000, 95 / 1000]] * 2))
    torch.testing.assert_close(raw[0, 1], _t([[10 / 500] * 2] * 2))
    with pytest.raises(ValueError, match='image_size'):
        offset_map(online, target, 2, 2, normalize=False)
    with pytest.raises(ValueError, match='H, W >= 2'):
        offset_map(online, target, 1, 2)


def test_roi_align_intersection_constant_per_image():
    x = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 4, 8, 8)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.6, 0.9], [0.5, 0.5, 0.75, 1.0]])
    out = roi_align_intersection(x, box, out_size=(3, 5))
    assert out.shape == (3, 4, 3, 5)
    torch.testing.assert_close(out, torch.arange(3.0).view(3, 1, 1, 1).expand_as(out))


def test_grid_points_share_original_locations():
    a, b = _t([[0, 0, 100, 100]]), _t([[50, 20, 250, 120]])
    ga, gb = grid_points_in_intersection(a, b, torch.tensor([True]), None, G=2)
    # overlap (50, 20, 100, 100); 2 x 2 cell centres x in {62.5, 87.5}, y in {40, 80}
    torch.testing.assert_close(ga[0, :, 0], _t([-0.25, -0.75, -0.25, -0.75]))  # flipped view a
    torch.testing.assert_close(gb[0, :, 0], _t([-0.875, -0.625, -0.875, -0.625]))
    torch.testing.assert_close(ga[0, :, 1], _t([-0.2, -0.2, 0.6, 0.6]))
    torch.testing.assert_close(gb[0, :, 1], _t([-0.6, -0.6, 0.2, 0.2]))


def test_map_masks_zero_outside_source():
    masks = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    out = map_masks_to_view(masks, _t([[0, 0, 50, 100]]), _t([[0, 0, 100, 100]]), None, out_size=4)
    torch.testing.assert_close(out[0, 0], _t([[1, 1, 0, 0]] * 4))


# ---------------------------------------------------------------------------------------- coordinate-encoding test
def coordinate_image(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 image: channel 0 is the original x of each pixel centre, channel 1 its y."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return np.stack((xs, ys), axis=-1)


def sample_coordinate_views(flip_prob: float):
    """A batch over SEEDS of IoUPairCrop pairs of the coordinate image: per view a (B, 2, S, S) map, boxes, flips."""
    crop = IoUPairCrop(size=SIZE, iou_thr=0.5, flip_prob=flip_prob)
    img = coordinate_image(IMG_H, IMG_W)
    maps, boxes, flips = [], [], []
    for seed in SEEDS:
        np.random.seed(seed)
        out = crop(dict(img=img.copy()))
        maps.append(np.stack(out['img']))
        boxes.append(out['view_boxes'])
        flips.append(out['view_flips'])
    maps = torch.from_numpy(np.stack(maps)).permute(1, 0, 4, 2, 3).double()  # (2 views, B, 2, S, S)
    boxes = torch.from_numpy(np.stack(boxes)).transpose(0, 1).double()  # (2, B, 4)
    flips = torch.from_numpy(np.stack(flips)).transpose(0, 1)  # (2, B)
    return maps, boxes, flips


@pytest.fixture(scope='module', params=[0.0, 0.5, 1.0], ids=['no_flip', 'mixed_flips', 'all_flipped'])
def coordinate_views(request):
    maps, boxes, flips = sample_coordinate_views(request.param)
    if request.param == 0.5:  # both one-flipped cases occur
        assert (flips[0] & ~flips[1]).any() and (~flips[0] & flips[1]).any()
    else:
        assert bool(flips.all()) == (request.param == 1.0) and bool(flips.any()) == (request.param == 1.0)
    return maps, boxes, flips


def feature_map(view_map: torch.Tensor, cells: int) -> torch.Tensor:
    """A "feature map" of the view: the view itself (cells = SIZE) or its cells x cells average pooling."""
    return F.avg_pool2d(view_map, SIZE // cells) if cells != SIZE else view_map


def cell_size(box: torch.Tensor, cells: int) -> torch.Tensor:
    """(B, 2, 1, 1) size in original pixels of one feature cell, at least one original pixel (a resampled view cannot
    localise better than its source pixels at its borders)."""
    return ((box[:, 2:] - box[:, :2]) / cells).clamp_min(1.0)[:, :, None, None]


@pytest.mark.parametrize('cells', [SIZE, 14, 7])
def test_maps_hold_cell_coords(coordinate_views, cells):
    maps, boxes, flips = coordinate_views
    for v in range(2):
        fmap = feature_map(maps[v], cells)
        tol = 0.5 * cell_size(boxes[v], cells)
        # as displayed (flip-aware cell_coords) and after flip_back (unflipped cell_coords)
        assert ((fmap - cell_coords(boxes[v], cells, cells, flips[v])).abs() < tol).all()
        assert ((flip_back(fmap, flips[v]) - cell_coords(boxes[v], cells, cells)).abs() < tol).all()
    if cells != SIZE:  # pooled cells are exact up to the resize's border handling: tight
        torch.testing.assert_close(feature_map(maps[0], cells), cell_coords(boxes[0], cells, cells, flips[0]),
                                   atol=0.1, rtol=0)


@pytest.mark.parametrize('cells', [SIZE, 14, 7])
def test_roi_alignment_sees_same_original_coords(coordinate_views, cells):
    """Eqs. 3-4: R and R' hold the same original coordinates, those of the intersection's cells."""
    maps, boxes, flips = coordinate_views
    inter = intersection_box(boxes[0], boxes[1])
    expected = cell_coords(inter, cells, cells)
    aligned = []
    for v in range(2):
        fmap = flip_back(feature_map(maps[v], cells), flips[v])
        aligned.append(roi_align_intersection(fmap, box_in_view(inter, boxes[v]), out_size=cells))
        assert ((aligned[v] - expected).abs() < 0.5 * cell_size(boxes[v], cells)).all()
    tol = 0.5 * torch.maximum(cell_size(boxes[0], cells), cell_size(boxes[1], cells))
    assert ((aligned[0] - aligned[1]).abs() < tol).all()


@pytest.mark.parametrize('cells', [14, 7])
def test_offset_map_matches_map_values(coordinate_views, cells):
    """Eq. 5 from the boxes equals the displacement read off the flipped-back maps, divided by G's extent."""
    maps, boxes, flips = coordinate_views
    g_online, g_target = (flip_back(feature_map(maps[v], cells), flips[v]) for v in range(2))
    extent = g_online[:, :, -1, -1] - g_online[:, :, 0, 0]  # coord(G_HW) - coord(G_11), (B, 2)
    from_maps = (g_target - g_online) / extent[:, :, None, None]
    torch.testing.assert_close(offset_map(boxes[0], boxes[1], cells, cells), from_maps, atol=2e-3, rtol=0)
    torch.testing.assert_close(offset_map(boxes[1], boxes[0], cells, cells),
                               (g_online - g_target) / (g_target[:, :, -1, -1] - g_target[:, :, 0, 0])[..., None, None],
                               atol=2e-3, rtol=0)
    image_size = torch.tensor([[IMG_W, IMG_H]] * g_online.shape[0])
    torch.testing.assert_close(offset_map(boxes[0], boxes[1], cells, cells, normalize=False, image_size=image_size),
                               (g_target - g_online) / torch.tensor([IMG_W, IMG_H]).view(1, 2, 1, 1).double(),
                               atol=1e-3, rtol=0)


def test_grid_points_sample_same_coords_in_both_views(coordinate_views):
    """DenseSiam PixSim: the grid points of the two (unflipped-back) views read the same original coordinates."""
    maps, boxes, flips = coordinate_views
    G = 7
    grids = grid_points_in_intersection(boxes[0], boxes[1], flips[0], flips[1], G)
    sampled = [F.grid_sample(maps[v], grids[v][:, None], align_corners=False)[:, :, 0] for v in range(2)]
    expected = cell_coords(intersection_box(boxes[0], boxes[1]), G, G).flatten(2)  # (B, 2, G*G)
    for v in range(2):
        torch.testing.assert_close(sampled[v], expected, atol=0.1, rtol=0)
    assert ((grids[0].abs() < 1) & (grids[1].abs() < 1)).all()


def test_masks_from_spanning_view_land_on_right_pixels(coordinate_views):
    """Odin: a mask computed on the spanning view, resampled into each view, covers the pixels it should."""
    maps, boxes, flips = coordinate_views
    span = spanning_box(boxes[0], boxes[1])
    cells = 14
    # (1) a 'mask' holding the spanning view's own coordinates lands on the view's pixels with those coordinates
    coord_masks = cell_coords(span, 32, 32)
    for v in range(2):
        mapped = map_masks_to_view(coord_masks, span, boxes[v], flips[v], out_size=cells)
        torch.testing.assert_close(mapped, feature_map(maps[v], cells), atol=0.1, rtol=0)
    # (2) a binary mask "left of the overlap's centre" agrees with the view pixels' own x, away from its edge
    inter = intersection_box(boxes[0], boxes[1])
    x0 = ((inter[:, 0] + inter[:, 2]) / 2)[:, None, None, None]
    mask = (cell_coords(span, 64, 64)[:, :1] < x0).double()
    for v in range(2):
        mapped = map_masks_to_view(mask, span, boxes[v], flips[v], out_size=cells, mode='nearest')
        x = feature_map(maps[v], cells)[:, :1]
        margin = ((span[:, 2] - span[:, 0]) / 64 + (boxes[v][:, 2] - boxes[v][:, 0]) / cells)[:, None, None, None]
        far = (x - x0).abs() > margin
        assert far.float().mean() > 0.5
        assert torch.equal(mapped[far], (x < x0).double()[far])
