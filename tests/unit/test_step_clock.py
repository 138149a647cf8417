"""The training loop's step clock (bench/harness/measure.py StepClock): on a GPU it stamps each
step's end with a device event and reads them in one wait before an evaluation, so the host runs
ahead of the device; on a CPU it reads the wall clock.

A CPU has no CUDA events (torch: "cpu backend doesn't support events"), so the event path runs here
with a stand-in that offers what the clock uses of torch.cuda.Event (record, synchronize,
elapsed_time in ms) on a device clock the test advances. Only a GPU shows real events."""

from __future__ import annotations

from bench.harness.measure import StepClock
from tests.helpers.step_clock import Device


def test_steps_on_a_gpu_are_read_in_one_wait_not_one_per_step():
    device = Device()
    clock = StepClock(device.event)
    clock.restart()
    for step_end in (1.0, 3.0, 6.0):
        device.now = step_end
        clock.lap(32)
    assert device.waits == 0  # the host never waited inside the loop
    assert clock.laps() == [(1.0, 32), (2.0, 32), (3.0, 32)]
    assert device.waits == 1
    assert clock.laps() == [] and device.waits == 1  # nothing pending: no wait


def test_an_evaluation_between_steps_is_not_counted_in_the_next_step():
    device = Device()
    clock = StepClock(device.event)
    clock.restart()
    device.now = 2.0
    clock.lap(16)
    assert clock.laps() == [(2.0, 16)]
    device.now = 10.0  # an evaluation ran (it is on the training clock by the wall clock)
    clock.restart()
    device.now = 10.5
    clock.lap(16)
    device.now = 12.0
    clock.exclude(0.25)  # the profiler's host time, through which the compile probe makes the device idle
    clock.lap(16)
    assert clock.laps() == [(0.5, 16), (1.25, 16)]


def test_on_a_cpu_the_wall_clock_times_each_step_and_excluded_time_comes_off():
    clock = StepClock()
    clock.restart()
    clock.lap(8)
    clock.exclude(1000.0)  # far more than a lap takes: the next lap is shorter by exactly it
    clock.lap(8)
    (first, first_samples), (second, _) = clock.laps()
    assert first >= 0 and first_samples == 8
    assert second < 0 and second + 1000.0 >= 0
