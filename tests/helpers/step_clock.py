"""Helpers for unit/test_step_clock.py, unit/test_train_loop.py: a stand-in for torch.cuda.Event
(a CPU has no CUDA events) offering what bench's step clock uses of one: record, synchronize,
elapsed_time in ms, on a device clock the test advances."""

from __future__ import annotations


class Device:
    """A device clock the test moves, and the number of times the host waited for the device."""

    def __init__(self) -> None:
        self.now, self.waits, self.last_recorded = 0.0, 0, None

    def event(self) -> DeviceEvent:
        return DeviceEvent(self)


class DeviceEvent:
    def __init__(self, device: Device) -> None:
        self.device, self.at = device, None

    def record(self) -> None:
        self.at = self.device.now  # where the stream will be when the device reaches it
        self.device.last_recorded = self

    def synchronize(self) -> None:
        # Waiting on the newest event waits for every step before it; an older one would not.
        assert self is self.device.last_recorded, "waited on an event before the last step's end"
        self.device.waits += 1

    def elapsed_time(self, end: DeviceEvent) -> float:
        return (end.at - self.at) * 1000.0
