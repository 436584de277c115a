"""Frame shrink (issue 18, item 1): the factor each config's pipeline allows, per frame size; the same random draws
give the same boxes (frame-relative) and close views on full and shrunk frames; the record and its check."""
import numpy as np
import pytest
from conftest import ROOT
from mmengine.config import Config
from test_reduced_decode import coordinate_image, mean_abs_diff

from multisiam_mm.datasets import frame_shrink as fs
from multisiam_mm.datasets.transforms.iou_pair_crop import sample_pair_boxes
from multisiam_mm.datasets.transforms.scaled_pixels import CropResize, ScaledPixels

H, W = 640, 960  # 3:2 like the Waymo front camera, at half its size (fast)
SCALE, RATIO = (0.08, 1.0), (3. / 4., 4. / 3.)


def cfg(name: str) -> Config:
    return Config.fromfile(f'{ROOT}/configs/{name}')


def test_factor_of_the_paper_pipeline_is_the_closed_form():
    """sqrt(s_min W H min(r_min, 1 / r_max)) / S: 384 / 224 on 1920 x 1280, 333 / 224 on 1920 x 968."""
    views = fs.config_views(cfg('multisiam_waymo.py'))
    for hw in ((1280, 1920), (968, 1920)):
        plan = fs.shrink_plan(hw, views)
        closed = (np.sqrt(0.08 * hw[0] * hw[1] * 0.75) - 0.5) / 224
        assert plan.shrinks and plan.factor == pytest.approx(closed, rel=2e-3)
        assert not fs.keeps_views(plan.stored, views)  # every view keeps 224 px on the stored frame
        tighter = (plan.stored[0] - 1, plan.stored[1] - 1)
        assert fs.keeps_views(tighter, views)  # and one pixel less would not: the factor is the largest


def test_each_config_gets_its_own_factor_and_odin_says_it_allows_none():
    dense = fs.shrink_plan((1280, 1920), fs.config_views(cfg('densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py')))
    assert dense.factor == pytest.approx((np.sqrt(0.2 * 1280 * 1920 * 0.75) - 0.5) / 224, rel=4e-3)  # scale 0.2
    odin = fs.shrink_plan((1280, 1920), fs.config_views(cfg('odin/odin_r50_8xb128-coslr-300e_waymo.py')))
    assert not odin.shrinks and odin.factor == 1 and 'OdinSpanningView' in odin.limit and '448' in odin.limit
    with pytest.raises(fs.NoShrink, match='Resize comes before the view crop'):
        fs.pipeline_views([dict(type='LoadImageFromFile'), dict(type='Resize', scale=100),
                           dict(type='IoUPairCrop')])
    mmpretrain_views = fs.pipeline_views([dict(type='LoadImageFromFile'), dict(
        type='MultiView', num_views=[1, 1], transforms=[[dict(type='RandomResizedCrop', scale=224)]] * 2)])
    assert [v.size for v in mmpretrain_views] == [224, 224] and mmpretrain_views[0].scale == SCALE


def draw(hw, seed):
    return sample_pair_boxes(hw, 1, SCALE, RATIO, 0.5, 16, 64, np.random.RandomState(seed))[0][0]


def test_same_draws_same_boxes_and_views_on_full_and_shrunk_frames():
    """Boxes agree in frame-relative coordinates up to the stored grid's rounding (1.5 stored px) for all but the
    rare draws where rounding flips an accept/reject decision; their views differ on average by less than moving the
    full-frame box by one pixel does (the measure of tests/test_reduced_decode.py)."""
    views = [fs.ViewSpec('views', 112, 'rrc', SCALE, RATIO)]
    plan = fs.shrink_plan((H, W), views)
    img = coordinate_image(H, W)
    small = fs.shrink_image(img, plan.stored)
    assert small.shape[:2] == plan.stored and plan.factor > 1.6
    full, shrunk, resize = ScaledPixels(img), ScaledPixels(small), CropResize(112)
    frame, stored = np.array((W, H, W, H)), np.array(plan.stored[::-1] * 2)
    matched, diffs, shifts = 0, [], []
    for seed in range(120):
        a, b = draw((H, W), seed), draw(plan.stored, seed)
        assert np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).min() >= 112  # never an upscale
        if np.abs(a / frame - b / stored).max() > 1.5 / plan.stored[0]:
            continue
        matched += 1
        for box_a, box_b in zip(a, b):
            view = full.crop(box_a, resize)
            diffs.append(mean_abs_diff(view, shrunk.crop(box_b, resize)))
            shifts.append(mean_abs_diff(view, full.crop(box_a + 1, resize)))
    assert matched >= 114, matched  # 95 %
    assert np.mean(diffs) < 0.75 * np.mean(shifts), (np.mean(diffs), np.mean(shifts))


def test_record_and_check(tmp_path):
    config = cfg('multisiam_waymo.py')
    config.train_dataloader.dataset.data_root = str(tmp_path)
    assert fs.check_config_frames(config) == (None, [])  # no record: nothing to check
    policy = fs.ShrinkPolicy('configs/multisiam_waymo.py', fs.config_views(config))
    policy.plan((1280, 1920))
    fs.write_record(str(tmp_path), policy.record(95))
    assert fs.check_config_frames(config) == (None, [])
    odin = cfg('odin/odin_r50_8xb128-coslr-300e_waymo.py')
    odin.train_dataloader.dataset.data_root = str(tmp_path)
    error, _ = fs.check_config_frames(odin)
    assert error and 'too small for this config' in error and '1920x1280 frames were stored at 1123x749' in error
    dense = cfg('densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py')
    dense.train_dataloader.dataset.data_root = str(tmp_path)
    error, notes = fs.check_config_frames(dense)
    assert error is None and 'would allow 2.7' in notes[0]


@pytest.mark.slow  # a tools/train.py subprocess (imports the stack)
def test_train_refuses_frames_shrunk_for_a_config_with_larger_views(tmp_path):
    """tools/train.py: exit 2 with one error line naming the sizes and the fix, before building the Runner."""
    import subprocess
    import sys
    (tmp_path / 'five_cameras.txt').write_text('a.jpg\n')
    policy = fs.ShrinkPolicy.from_config(f'{ROOT}/configs/multisiam_waymo.py')
    policy.plan((1280, 1920))
    fs.write_record(str(tmp_path), policy.record(95))
    odin = f'{ROOT}/configs/odin/odin_r50_8xb128-coslr-300e_waymo.py'
    res = subprocess.run([sys.executable, f'{ROOT}/tools/train.py', odin, '--work-dir', str(tmp_path / 'w'),
                          '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-1500:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('error: frames in') and 'too small for this config' in last and '--shrink-for' in last


@pytest.mark.slow  # a tools/prepare_frames.py subprocess with 2 worker processes
def test_prepare_frames_shrinks_a_folder_resumably_and_never_touches_the_input(tmp_path, capsys):
    import subprocess
    import sys

    import cv2
    src = tmp_path / 'frames' / 'seg'
    src.mkdir(parents=True)
    big = coordinate_image(1280, 1920)
    cv2.imwrite(str(src / 'a.jpg'), big)
    cv2.imwrite(str(src / 'b.jpg'), big[:968])
    (src / 'bad.jpg').write_bytes(b'not an image')
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    tool, config = f'{ROOT}/tools/prepare_frames.py', f'{ROOT}/configs/multisiam_waymo.py'
    run = [sys.executable, tool, str(tmp_path / 'frames'), '--out', str(tmp_path / 'small'), '--shrink-for', config,
           '--workers', '2']
    res = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    assert '[2/3]' not in res.stdout and '[3/3]' in res.stdout and 'ETA' in res.stdout
    assert 'summary: 2 images' in res.stdout and '1 unreadable' in res.stdout
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # input untouched
    policy = fs.ShrinkPolicy.from_config(config)
    assert cv2.imread(str(tmp_path / 'small' / 'seg' / 'a.jpg')).shape[:2] == policy.plan((1280, 1920)).stored
    assert cv2.imread(str(tmp_path / 'small' / 'seg' / 'b.jpg')).shape[:2] == policy.plan((968, 1920)).stored
    assert (tmp_path / 'small' / 'frames.txt').read_text().split() == ['seg/a.jpg', 'seg/b.jpg']
    assert set(fs.read_record(str(tmp_path / 'small'))['sizes']) == {'1920x1280', '1920x968'}
    (tmp_path / 'small' / 'seg' / 'b.jpg').unlink()  # a killed run: b missing
    sys.path.insert(0, f'{ROOT}/tools')
    try:
        import prepare_frames
    finally:
        sys.path.remove(f'{ROOT}/tools')
    prepare_frames.main(run[2:])
    again = capsys.readouterr().out
    assert '1 done earlier' in again and '[2/2]' in again  # b and the bad file retried
    assert set(fs.read_record(str(tmp_path / 'small'))['sizes']) == {'1920x1280', '1920x968'}
    with pytest.raises(SystemExit) as exit_info:
        prepare_frames.main(run[2:4] + [str(tmp_path / 'frames' / 'out')] + run[5:])
    assert exit_info.value.code == 2 and 'inside the input folder' in capsys.readouterr().err


def test_loader_benchmark_quick_mode(capsys):
    import sys
    sys.path.insert(0, f'{ROOT}/benchmarks')
    try:
        import loader_bench
    finally:
        sys.path.remove(f'{ROOT}/benchmarks')
    loader_bench.main(['--quick', '--gpu-images-per-s', '500'])
    out = capsys.readouterr().out
    assert 'shrunk frames 1123x749' in out and 'workers per GPU at 500 images/s' in out
    rows = [line for line in out.splitlines() if line.startswith('| (')]
    assert [row.split(' |')[0][2:] for row in rows] == [name for name in loader_bench.NAMES]
