"""Aggregate the quality benchmark's stage results: markdown table, JSON and a bar plot (mean ± spread over seeds)."""
import json
import os.path as osp
import statistics
from typing import Dict, List, Mapping, Optional, Sequence

MEASURES = (('linear', 'mIoU', 'linear probe mIoU'), ('finetune', 'mIoU', 'FCN fine-tune mIoU'),
            ('abo', 'ABO_c', 'ABO^c'))


def load_results(work_dir: str, arms: Sequence[str], seeds: Sequence[int]) -> Dict[str, Dict[str, List[dict]]]:
    """{arm: {stage: [result of each seed that finished it]}}."""
    out: Dict[str, Dict[str, List[dict]]] = {}
    for arm in arms:
        for seed in seeds:
            for stage in ('pretrain', 'linear', 'finetune', 'abo'):
                path = osp.join(work_dir, arm, f'seed{seed}', f'{stage}.json')
                if osp.exists(path):
                    with open(path) as f:
                        out.setdefault(arm, {}).setdefault(stage, []).append(dict(json.load(f), seed=seed))
    return out


def mean_spread(values: Sequence[float]) -> Optional[Dict[str, float]]:
    """Mean, sample standard deviation (0 for one value), min, max and count; None for no values."""
    if not values:
        return None
    return dict(mean=statistics.fmean(values), std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), n=len(values))


def summarise(results: Dict[str, Dict[str, List[dict]]]) -> Dict[str, Dict[str, Optional[dict]]]:
    """{arm: {measure stage: mean_spread, '<stage>_seconds': mean_spread of wall times}}."""
    summary = {}
    for arm, stages in results.items():
        row = {stage: mean_spread([r[key] for r in stages.get(stage, [])]) for stage, key, _ in MEASURES}
        for stage, runs in stages.items():
            row[f'{stage}_seconds'] = mean_spread([r['seconds'] for r in runs])
        summary[arm] = row
    return summary


def _cell(stat: Optional[dict]) -> str:
    if stat is None:
        return '—'
    return f'{stat["mean"]:.2f} ± {stat["std"]:.2f} (n={stat["n"]})' if stat['n'] > 1 else f'{stat["mean"]:.2f}'


def _seconds(stat: Optional[dict]) -> str:
    return '—' if stat is None else f'{stat["mean"]:.0f}'


def markdown(summary: Mapping[str, dict], arms: Mapping) -> str:
    """The results table: one row per arm, mean ± sample std over seeds, mean wall seconds per stage."""
    head = ('| arm | paper Table 4 (Cityscapes mIoU) | ' + ' | '.join(title for *_, title in MEASURES)
            + ' | pretrain s | linear s | finetune s | ABO s |')
    rows = [head, '|' + '---|' * (2 + len(MEASURES) + 4)]
    for name, row in summary.items():
        paper = arms[name].paper
        rows.append(f'| {name}: {arms[name].title} | {"—" if paper is None else paper} | '
                    + ' | '.join(_cell(row.get(stage)) for stage, *_ in MEASURES) + ' | '
                    + ' | '.join(_seconds(row.get(f'{s}_seconds')) for s in ('pretrain', 'linear', 'finetune', 'abo'))
                    + ' |')
    return '\n'.join(rows)


def plot(summary: Mapping[str, dict], path: str) -> None:
    """One bar panel per measure: mean over seeds, error bars from min to max, one dot per seed's value."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(summary)
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(5 * len(MEASURES), 4.2))
    for ax, (stage, _, title) in zip(axes, MEASURES):
        stats = [summary[n].get(stage) for n in names]
        means = [s['mean'] if s else 0.0 for s in stats]
        low = [s['mean'] - s['min'] if s else 0.0 for s in stats]
        high = [s['max'] - s['mean'] if s else 0.0 for s in stats]
        ax.bar(range(len(names)), means, yerr=[low, high], capsize=4, color='#4c72b0')
        ax.set_xticks(range(len(names)), names, rotation=35, ha='right')
        ax.set_title(title)
        finite = [m for m, s in zip(means, stats) if s]
        if finite:
            ax.set_ylim(min(finite) * 0.9, max(s['max'] for s in stats if s) * 1.03)
    fig.suptitle('quality benchmark: mean over seeds, bars = min..max')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(work_dir: str, arms: Mapping, seeds: Sequence[int]) -> str:
    """Write results.md / results.json / results.png into ``work_dir`` and return the markdown table."""
    results = load_results(work_dir, list(arms), seeds)
    summary = summarise(results)
    table = markdown(summary, arms)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(dict(summary=summary, runs=results), f, indent=1)
    if summary:
        plot(summary, osp.join(work_dir, 'results.png'))
    return table
