"""ClusterMapHook: cluster maps of the training backbone on a few fixed images, every N iterations (paper Fig. 6).

Every ``interval`` iterations (and after the last) the hook runs the model's backbone (eval mode, no gradients,
then back to its previous mode) on ``num_images`` fixed images, clusters each final feature map with k-means
(:mod:`multisiam_mm.evaluation.cluster_maps`) and writes one row of overlays to
``<work_dir>/vis_data/cluster_maps/iter_XXXXXX.png``; the grid also goes to the visualizer
(``runner.visualizer.add_image('cluster_maps', ..., step=iter)``, i.e. TensorBoard when a TensorboardVisBackend is
configured). Images come from ``img_dir`` (its images, recursively, sorted: the first ``num_images``) or, by
default, the training dataset (its first samples' ``img_path``). They are read by the robust loader: a bad file
(unreadable, empty, truncated, not an image, ...) is skipped with a warning and quarantined for the run
(``<work_dir>/bad_files.txt``, BadFilesHook), and the next image takes its place; with no readable image among the
first ``max_tries`` candidates the hook warns and writes no maps.
"""
import logging
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence

import cv2
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...datasets.image_listing import list_images
from ...evaluation.cluster_maps import cluster_overlays, compose_grid, read_images


@HOOKS.register_module()
class ClusterMapHook(Hook):
    """Write k-means cluster maps of the backbone's final feature map on fixed images every ``interval`` iterations.

    Args:
        interval: iterations between two maps (written after iterations ``interval, 2 * interval, ...`` and the
            last).
        num_images: how many images (one row).
        img_dir: folder of images; None: the training dataset's first samples.
        size: ``(w, h)`` the images are resized to.
        num_clusters: K of the k-means.
        metric: ``'cosine'`` or ``'euclidean'`` k-means.
        out_dir: sub-folder of ``<work_dir>/vis_data`` for the PNGs.
        max_tries: candidate images tried at most (bad files are replaced by the next ones).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 100, num_images: int = 4, img_dir: Optional[str] = None,
                 size: Sequence[int] = (160, 112), num_clusters: int = 3, metric: str = 'cosine',
                 out_dir: str = 'cluster_maps', max_tries: int = 64) -> None:
        if interval < 1 or num_images < 1:
            raise ValueError(f'ClusterMapHook needs interval >= 1 and num_images >= 1, got {interval}, {num_images}')
        self.interval = interval
        self.num_images = num_images
        self.img_dir = img_dir
        self.size = tuple(size)
        self.num_clusters = num_clusters
        self.metric = metric
        self.out_dir = out_dir
        self.max_tries = max(max_tries, num_images)
        self._images: List = []

    def _candidate_paths(self, runner) -> Iterable[str]:
        """The candidate image paths, in order: from ``img_dir`` or from the training dataset."""
        if self.img_dir is not None:
            return list_images(self.img_dir, self.max_tries)
        dataset = runner.train_dataloader.dataset
        return (dataset.get_data_info(i)['img_path'] for i in range(min(self.max_tries, len(dataset))))

    def before_train(self, runner) -> None:
        """Read and resize the fixed images once (skipping bad files)."""
        _, self._images = read_images(self._candidate_paths(runner), self.size, self.num_images,
                                      who='ClusterMapHook')
        if len(self._images) < self.num_images:
            outcome = 'a shorter row of maps' if self._images else 'no cluster maps will be written'
            print_log(f'ClusterMapHook: {len(self._images)} of {self.num_images} images readable among the first '
                      f'{self.max_tries} candidates: {outcome}', logger='current', level=logging.WARNING)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Write the cluster maps after every ``interval``-th iteration and after the last."""
        if self._images and (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            self.write_maps(runner)

    def write_maps(self, runner) -> str:
        """Cluster maps of the current backbone: write ``iter_XXXXXX.png``, log it, return its path."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = model.backbone
        was_training = backbone.training
        try:
            row = cluster_overlays(backbone, self._images, self.num_clusters, self.metric)
        finally:
            backbone.train(was_training)
        grid = compose_grid([row])
        folder = osp.join(runner.work_dir, 'vis_data', self.out_dir)
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'iter_{runner.iter + 1:06d}.png')
        cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        runner.visualizer.add_image(self.out_dir, grid, step=runner.iter + 1)
        return path
