"""fastconv.adaptive.AdaptiveThreads: the thread-count decisions under a fake clock whose
step times depend on the thread count in use (no real timings are asserted)."""
import numpy as np
import pytest

import fastconv
from fastconv.adaptive import AdaptiveThreads


class FakeSteps:
    """A clock: each step takes cost[threads] seconds (threads read when the step runs)."""

    def __init__(self, cost):
        self.cost, self.t = dict(cost), 0.0

    def __call__(self):
        return self.t

    def run(self, adapter, steps):
        used = []
        for _ in range(steps):
            n = fastconv.get_num_threads()
            used.append(n)
            self.t += self.cost[n]
            adapter()
        return used


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    fastconv.set_num_threads(None)


def test_moves_to_one_thread_under_load_and_back():
    clock = FakeSteps({1: 3.0, 2: 10.0})  # a busy second core: 2 threads 3x slower
    a = AdaptiveThreads(2, start_threads=2, probe_every=10, probe_steps=3, clock=clock)
    a.start()
    assert fastconv.get_num_threads() == 2
    used = clock.run(a, 30)
    assert a.threads == 1 and fastconv.get_num_threads() == 1
    assert a.switches[0][1:] == (2, 1)
    assert used[-16:].count(2) <= a.settle + a.probe_steps  # after the switch, 2 threads only in a probe
    clock.cost = {1: 3.0, 2: 1.7}  # the load is gone
    clock.run(a, 400)  # (after a failed probe the next waits 19x its time: ~5 % of the run)
    assert a.threads == 2 and a.switches[-1][1:] == (1, 2)


def test_failed_probes_back_off_and_end_early():
    """At 1 thread on a busy machine (2 threads 100x slower) probes end after one slow step
    and come less and less often."""
    clock = FakeSteps({1: 3.0, 2: 300.0})
    a = AdaptiveThreads(2, probe_every=10, probe_steps=3, clock=clock)
    a.start()
    used = clock.run(a, 600)
    assert a.threads == 1 and a.switches == []  # starts at 1 and stays
    # intervals 10, 20, ..., 160: at most ~8 probes in 600 steps, each settle + 1 steps long
    assert used[20:].count(2) <= 8 * (a.settle + 1)
    assert sum(clock.cost[n] for n in used) < 600 * 3.0 * 3


def test_starts_on_one_thread_and_climbs_on_a_quiet_machine():
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, probe_every=10, probe_steps=3, clock=clock)
    assert fastconv.get_num_threads() == 1
    a.start()
    used = clock.run(a, 40)
    assert a.switches[0][1:] == (1, 2) and a.switches[0][0] <= 10 and used[-10:] == [2] * 10


def test_hysteresis_keeps_the_count_for_small_differences():
    clock = FakeSteps({1: 0.95, 2: 1.0})  # 5 % apart: below gain=0.15
    a = AdaptiveThreads(2, start_threads=2, probe_every=5, probe_steps=2, clock=clock)
    a.start()
    used = clock.run(a, 100)
    assert a.switches == [] and a.threads == 2
    assert used.count(1) <= 100 // 5 * 3  # only the probes (and the step after each) ran at 1


def test_three_threads_climbs_both_ways():
    clock = FakeSteps({1: 5.0, 2: 2.0, 3: 4.0})
    a = AdaptiveThreads(3, probe_every=6, probe_steps=2, clock=clock)
    a.start()
    clock.run(a, 60)
    assert a.threads == 2


def test_chains_progress_and_restores_default():
    seen = []
    a = AdaptiveThreads(1, probe_every=4, probe_steps=1, then=lambda *args: seen.append(args))
    a(64, 0.5, 100.0)
    assert seen == [(64, 0.5, 100.0)]
    a.close()
    fastconv.set_num_threads(None)


def test_train_epoch_with_adapter_trains():
    """As train_epoch's progress callback (a real tiny LeNet-5 run): loss is finite and the
    thread count stays within 1..max."""
    from fastconv.training import train_epoch

    rng = np.random.default_rng(0)
    model = fastconv.models.lenet5(rng=rng)
    opt = fastconv.optim.SGD(model.parameters(), lr=0.01)
    batches = [(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8))
               for _ in range(12)]
    a = AdaptiveThreads(2, probe_every=5, probe_steps=2)
    a.start()
    r = train_epoch(model, fastconv.nn.CrossEntropyLoss(), opt, batches, progress=a)
    assert np.isfinite(r["loss"]) and r["samples"] == 96
    assert 1 <= a.threads <= 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_threads=0), "max_threads"),
    (dict(max_threads=True), "max_threads"),
    (dict(probe_every=0), "probe_every"),
    (dict(probe_steps=0), "probe_steps"),
    (dict(probe_every=5, probe_steps=3), "larger than probe_steps"),
    (dict(gain=1.0), "gain"),
    (dict(max_threads=2, start_threads=3), "start_threads"),
    (dict(start_threads=0), "start_threads"),
    (dict(gain="0.1"), "gain"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveThreads(**kwargs)
