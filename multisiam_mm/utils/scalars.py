"""Reading back what mmengine's LocalVisBackend logged (``<log_dir>/vis_data/scalars.json``)."""
import json
import os.path as osp
from typing import List, Tuple


def loss_curve(log_dir: str) -> List[Tuple[int, float]]:
    """(iteration, total loss) pairs from mmengine's scalars.json of one run."""
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    curve = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                curve.append((int(rec['iter']), float(rec['loss'])))
    return curve
