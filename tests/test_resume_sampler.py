"""ResumableSampler / ResumableInfiniteSampler: the stream resumed from a saved state is the uninterrupted stream,
for every rank, and per-sample seeds make the augmentations a function of (seed, epoch, index) only."""
import pickle
import random
from itertools import islice
from unittest import mock

import numpy as np
import pytest
import torch

from multisiam_mm.datasets.samplers import ResumableInfiniteSampler, ResumableSampler, SeededIndex, sample_rng
from multisiam_mm.datasets.samplers import resumable_sampler as module


def make(cls, n: int, rank: int = 0, world: int = 1, seed: int = 3):
    with mock.patch.object(module, 'get_dist_info', return_value=(rank, world)):
        return cls(list(range(n)), shuffle=True, seed=seed)


def epoch_stream(sampler, epoch: int) -> list:
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize('world', [1, 2, 3])
def test_epoch_sampler_resumes_every_rank_where_it_stopped(world):
    n, epoch = 10, 2
    full = [epoch_stream(make(ResumableSampler, n, r, world), epoch) for r in range(world)]
    assert all(len(s) == len(full[0]) == -(-n // world) for s in full)
    assert sorted(set(sum(full, []))) == list(range(n))  # the shards cover the dataset
    for consumed in range(len(full[0]) + 1):  # stop after any number of samples per rank
        running = make(ResumableSampler, n, 0, world)
        running.set_epoch(epoch)
        it = iter(running)
        list(islice(it, consumed))
        state = running.state_dict(consumed)
        for r in range(world):
            resumed = make(ResumableSampler, n, r, world, seed=99)  # the seed comes from the state
            resumed.load_state_dict(state)
            if state['epoch'] == epoch:
                assert resumed.remaining() == len(full[r]) - consumed
                assert epoch_stream(resumed, epoch) == full[r][consumed:]
            else:  # the epoch was done: the next one starts from its beginning
                assert consumed == len(full[r]) and state == dict(state, epoch=epoch + 1, position=0)
                assert epoch_stream(resumed, epoch + 1) == epoch_stream(make(ResumableSampler, n, r, world),
                                                                         epoch + 1)


def test_epoch_sampler_permutations_differ_between_epochs_and_yield_seeded_indices():
    s = make(ResumableSampler, 50)
    e0, e1 = epoch_stream(s, 0), epoch_stream(s, 1)
    assert e0 != e1 and sorted(e0) == sorted(e1) == list(range(50))
    assert all(isinstance(i, SeededIndex) and i.seed == 3 for i in e0)
    assert {i.epoch for i in e1} == {1}


@pytest.mark.parametrize('world', [1, 2, 3])
def test_infinite_sampler_resumes_every_rank_where_it_stopped(world):
    n = 7
    full = [list(islice(iter(make(ResumableInfiniteSampler, n, r, world)), 30)) for r in range(world)]
    # the ranks interleave one stream of epoch permutations (mmengine's InfiniteSampler layout)
    stream = [i for k in range(30) for i in (full[r][k] for r in range(world))]
    for e in range(3):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
        assert {i.epoch for i in stream[e * n:(e + 1) * n]} == {e}
    for consumed in (0, 1, 5, 13):
        running = make(ResumableInfiniteSampler, n, 0, world)
        list(islice(iter(running), consumed))
        state = running.state_dict(consumed)
        for r in range(world):
            resumed = make(ResumableInfiniteSampler, n, r, world, seed=99)
            resumed.load_state_dict(state)
            assert list(islice(iter(resumed), 30 - consumed)) == full[r][consumed:]


def test_a_new_world_size_continues_the_epoch_without_repeating_or_skipping():
    n = 12
    old = make(ResumableSampler, n, 0, 2)
    old.set_epoch(0)
    seen = [list(islice(iter(make(ResumableSampler, n, r, 2)), 2)) for r in range(2)]  # 2 per rank consumed
    list(islice(iter(old), 2))
    state = old.state_dict(2)
    rest = []
    for r in range(3):
        s = make(ResumableSampler, n, r, 3)
        with mock.patch.object(module, 'print_log') as log:
            s.load_state_dict(state)
        assert 'ranks' in log.call_args[0][0]
        rest += epoch_stream(s, 0)
    assert sorted(set(sum(seen, []) + rest)) == list(range(n))  # nothing skipped
    assert len(rest) == 9 and not set(sum(seen, [])) & set(rest)  # 8 left, 1 repeat to pad 3 shares, none re-seen


def test_a_foreign_state_is_refused_and_a_changed_dataset_restarts_the_epoch():
    s = make(ResumableSampler, 10)
    with pytest.raises(ValueError, match='lacks'):
        s.load_state_dict(dict(epoch=1, position=4))
    state = make(ResumableSampler, 12).state_dict()
    state.update(epoch=1, position=4)
    with mock.patch.object(module, 'print_log'):
        s.load_state_dict(state)
    assert s.remaining() == 10 and s.epoch == 1


def test_seeded_index_is_an_int_that_survives_pickling():
    i = SeededIndex(5, seed=7, epoch=2)
    j = pickle.loads(pickle.dumps(i))
    assert j == 5 and isinstance(j, SeededIndex) and (j.seed, j.epoch) == (7, 2)
    assert [10, 11, 12, 13, 14, 15][i] == 15 and np.arange(6)[i] == 5
    seeds = {SeededIndex(a, s, e).sample_seed for a in range(3) for s in range(3) for e in range(3)}
    assert len(seeds) == 27 and i.sample_seed == SeededIndex(5, 7, 2).sample_seed


def draws() -> tuple:
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_sample_rng_fixes_every_global_generator_and_puts_them_back():
    index = SeededIndex(3, seed=0, epoch=1)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with sample_rng(index):
        first = draws()
    after_first = draws()
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    with sample_rng(index):
        assert draws() == first  # whatever state the generators were in
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with sample_rng(index):
        draws()
    assert draws() == after_first  # the outer streams are untouched
    with sample_rng(SeededIndex(3, seed=0, epoch=2)):
        assert draws() != first
    with sample_rng(3):  # a plain int: no seeding
        assert draws() != first
