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


def test_losing_probe_ends_after_two_timed_steps():
    """Quiet machine at 2 threads: a probe of 1 thread (slower on both timed steps) runs
    settle + 2 steps, not settle + probe_steps."""
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, start_threads=2, probe_every=20, probe_steps=6, clock=clock)
    a.start()
    used = clock.run(a, 30)
    assert a.switches == [] and a.threads == 2
    assert used.count(1) == a.settle + 2


def test_a_rise_in_step_time_probes_at_once():
    """A competitor arrives while at 2 threads: the step time rises 4x, and the adapter
    moves to 1 thread within a few steps, long before the scheduled probe; at 1 thread a
    rise probes nothing."""
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, start_threads=2, probe_every=200, probe_steps=3, clock=clock)
    a.start()
    clock.run(a, 200)  # (the early first probe fails, and its quiet time runs out)
    assert a.threads == 2 and a._baseline is not None and clock.t > a._quiet_until
    clock.cost = {1: 3.2, 2: 7.0}
    used = clock.run(a, 15)
    assert a.threads == 1 and a.switches[-1][1:] == (2, 1) and used[-3:] == [1, 1, 1]
    n_probes = len(a.probe_log)
    clock.cost = {1: 9.0, 2: 30.0}  # busier still: no probe up for a rise
    used = clock.run(a, 40)
    assert len(a.probe_log) == n_probes and used == [1] * 40


def test_steps_that_measured_a_plan_are_not_timed(monkeypatch):
    """The first steps at a new thread count measure autotune plans (slow once): they are
    not held against the probe, which still switches to the faster count."""
    from fastconv.functional import _autotune

    monkeypatch.setattr(_autotune, "_new_plans", {})
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, probe_every=10, probe_steps=3, clock=clock)
    a.start()
    measured = set()
    for _ in range(30):
        n = fastconv.get_num_threads()
        clock.t += clock.cost[n]
        if n not in measured:  # the first step at each count measures for 500 s
            measured.add(n)
            clock.t += 500.0
            _autotune._new_plans[f"plan t{n}"] = {}
        a()
    assert a.switches and a.switches[0][1:] == (1, 2) and a.threads == 2


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


def test_one_thread_max_never_probes():
    clock = FakeSteps({1: 3.0})
    a = AdaptiveThreads(1, probe_every=5, probe_steps=2, clock=clock)
    a.start()
    used = clock.run(a, 10)
    clock.cost = {1: 30.0}  # a rise with nowhere to go
    used += clock.run(a, 20)
    assert used == [1] * 30 and a.switches == [] and a.probe_log == []


def test_probe_log_records_outcomes():
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, probe_every=10, probe_steps=3, clock=clock)
    a.start()
    clock.run(a, 40)
    step, probed, t, cur, outcome = a.probe_log[0]
    assert (probed, outcome) == (2, "switch") and t == pytest.approx(1.7) and cur == pytest.approx(3.0)
    assert all(o in ("switch", "slower", "losing", "hopeless") for *_, o in a.probe_log)
    assert [o for *_, o in a.probe_log[1:]] == ["losing"] * (len(a.probe_log) - 1)  # back to 1: slower


def test_probes_down_from_the_top_are_a_rare_backstop():
    """Quiet machine at max_threads: after the first (failed) probe down, the scheduled
    probes down come >= 8 * probe_every steps apart."""
    clock = FakeSteps({1: 3.0, 2: 1.7})
    a = AdaptiveThreads(2, start_threads=2, probe_every=10, probe_steps=3, clock=clock)
    a.start()
    clock.run(a, 400)
    steps = [s for s, *_ in a.probe_log]
    assert a.switches == [] and len(steps) >= 2
    assert all(b - a_ >= 8 * 10 for a_, b in zip(steps, steps[1:])), steps


def test_close_gives_back_the_previous_count_and_stays_thread_local():
    """AdaptiveThreads drives the calling thread's own count: the process-wide setting and
    other Python threads are untouched, and close() restores what this thread had."""
    import threading

    fastconv.set_num_threads(2)
    a = AdaptiveThreads(2)
    assert fastconv.get_num_threads() == 1  # starts on one thread, in this thread only
    seen = []
    t = threading.Thread(target=lambda: seen.append(fastconv.get_num_threads()))
    t.start()
    t.join()
    assert seen == [2]
    a.close()
    a.close()  # idempotent
    assert fastconv.get_num_threads() == 2
    with fastconv.num_threads(1):
        b = AdaptiveThreads(2, start_threads=2)
        assert fastconv.get_num_threads() == 2
        b.close()
        assert fastconv.get_num_threads() == 1
