"""GPU samples from NVML, taken the way nvitop takes them: whatever fails reads as N/A.

A sample never raises. A machine without an NVIDIA GPU (no driver, no library, a failed
`nvmlInit`) yields a snapshot with no devices and `unavailable` set to a reason a person can
read; a single query that fails on a working GPU (power on a card without a sensor, memory
of a process in a container) leaves only that field None.

`pynvml` (the nvidia-ml-py package) is imported inside the functions, so importing this
module costs nothing on a machine that never samples.

system.jsonl holds one `snapshot_to_record` object per line; `record_to_snapshot` reads
them back and tolerates lines written by older or newer versions.
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from core.runs.rundir import EventWriter

DEFAULT_INTERVAL = 1.0
DEFAULT_PROCESS_EVERY = 5.0
# Ten minutes at one sample a second: what the GPU panel's timeline shows.
DEFAULT_HISTORY = 600

MILLIWATTS_PER_WATT = 1000.0


@dataclass(frozen=True, slots=True)
class DeviceSample:
    """One GPU at one moment; memory in bytes, utilisation in percent, power in watts."""

    index: int
    name: str | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    # NVML's memory utilisation: the share of time device memory was being read or
    # written (bandwidth busy), not the share of memory in use (memory_used/memory_total).
    memory_utilization: float | None = None
    temperature: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    pid: int
    device_index: int
    used: int | None = None


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    time: float
    devices: tuple[DeviceSample, ...] = ()
    processes: tuple[ProcessMemory, ...] = ()
    unavailable: str | None = None
    driver: str | None = None
    energy_mj: tuple[tuple[int, int], ...] = ()
    """(device index, the driver's total-energy counter in millijoules) for each GPU that
    has one (Volta and newer). The counter's difference over a run is the run's energy,
    exact where integrating one-second power samples misses what happens between them."""

    @property
    def available(self) -> bool:
        return self.unavailable is None

    def energy_of(self, index: int) -> int | None:
        return next((value for device, value in self.energy_mj if device == index), None)


@dataclass(frozen=True, slots=True)
class TorchMemory:
    """What the training process's CUDA caching allocator reported, in bytes."""

    allocated: int | None = None
    reserved: int | None = None
    peak: int | None = None

    @classmethod
    def from_train_event(cls, record: Mapping[str, Any]) -> TorchMemory | None:
        """The mem_* fields of a `train` event; None when the run had no CUDA memory stats."""
        memory = cls(
            allocated=_as_int(record.get("mem_allocated")),
            reserved=_as_int(record.get("mem_reserved")),
            peak=_as_int(record.get("mem_peak")),
        )
        if memory.allocated is None and memory.reserved is None and memory.peak is None:
            return None
        return memory


# -- NVML ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NvmlState:
    module: Any
    pid: int
    failure: str | None


_nvml_lock = threading.Lock()
_nvml_state: _NvmlState | None = None


def _nvml() -> tuple[Any, str | None]:
    """The initialised pynvml module, or None and why there is no GPU.

    nvmlInit runs once per process, and its failure is remembered: a missing driver does
    not appear between two samples, and retrying would cost a library search each second.
    A forked child (new pid) or a different pynvml module object (a test's fake)
    initialises afresh.
    """
    global _nvml_state
    try:
        import pynvml
    except ImportError:
        return None, "no NVIDIA GPU: nvidia-ml-py (pynvml) is not installed"
    with _nvml_lock:
        state = _nvml_state
        if state is None or state.module is not pynvml or state.pid != os.getpid():
            state = _NvmlState(module=pynvml, pid=os.getpid(), failure=_init_failure(pynvml))
            _nvml_state = state
    if state.failure is not None:
        return None, state.failure
    return pynvml, None


def _init_failure(nvml: Any) -> str | None:
    try:
        nvml.nvmlInit()
    except Exception as error:  # noqa: BLE001 - any failure to start NVML means "no GPU"
        if _is_error(nvml, error, "NVMLError_LibraryNotFound"):
            return "no NVIDIA GPU: NVML library not found"
        if _is_error(nvml, error, "NVMLError_DriverNotLoaded"):
            return "no NVIDIA GPU: NVIDIA driver not loaded"
        return f"NVML init failed: {_describe(error)}"
    return None


def _is_error(nvml: Any, error: BaseException, class_name: str) -> bool:
    error_class = getattr(nvml, class_name, None)
    return isinstance(error_class, type) and isinstance(error, error_class)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _query(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, or None when it fails in any way (nvitop's N/A rule).

    NVML reports NotSupported, NoPermission, GPU lost and so on as NVMLError subclasses;
    older bindings or drivers add AttributeError (no such function), NVMLLibraryMismatchError
    (a plain Exception) and ctypes errors. None of them may end a sample.
    """
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - see the docstring: every failure is N/A
        return None


def _call(nvml: Any, function_name: str, *args: Any) -> Any:
    function = getattr(nvml, function_name, None)
    return None if function is None else _query(function, *args)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _watts(milliwatts: Any) -> float | None:
    value = _as_float(milliwatts)
    return None if value is None else value / MILLIWATTS_PER_WATT


def _memory_info(nvml: Any, handle: Any) -> Any:
    """v2 first: since driver 510 v1's `used` also counts memory the driver reserves, so an
    idle 80 GB card shows about half a GiB used that no process can free; nvitop does the same.
    """
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        info = _call(nvml, "nvmlDeviceGetMemoryInfo", handle, version)
        if info is not None:
            return info
    return _call(nvml, "nvmlDeviceGetMemoryInfo", handle)


def _sample_device(nvml: Any, index: int) -> DeviceSample:
    handle = _call(nvml, "nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return DeviceSample(index=index)
    memory = _memory_info(nvml, handle)
    rates = _call(nvml, "nvmlDeviceGetUtilizationRates", handle)
    sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
    power_limit = _call(nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    if power_limit is None:
        power_limit = _call(nvml, "nvmlDeviceGetPowerManagementLimit", handle)
    return DeviceSample(
        index=index,
        name=_as_text(_call(nvml, "nvmlDeviceGetName", handle)),
        memory_used=_as_int(getattr(memory, "used", None)),
        memory_total=_as_int(getattr(memory, "total", None)),
        utilization=_as_float(getattr(rates, "gpu", None)),
        memory_utilization=_as_float(getattr(rates, "memory", None)),
        temperature=_as_float(_call(nvml, "nvmlDeviceGetTemperature", handle, sensor)),
        power_w=_watts(_call(nvml, "nvmlDeviceGetPowerUsage", handle)),
        power_limit_w=_watts(power_limit),
    )


def _energy_readings(nvml: Any, count: int) -> tuple[tuple[int, int], ...]:
    readings: list[tuple[int, int]] = []
    for index in range(count):
        handle = _call(nvml, "nvmlDeviceGetHandleByIndex", index)
        value = (
            None if handle is None else _call(nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
        )
        counter = _as_int(value)
        if counter is not None:
            readings.append((index, counter))
    return tuple(readings)


def _device_count(nvml: Any) -> tuple[int, str | None]:
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception as error:  # noqa: BLE001 - a failed count is reported, not raised
        return 0, f"NVML could not count GPUs: {_describe(error)}"
    number = _as_int(count)
    if number is None:
        return 0, f"NVML could not count GPUs: unexpected answer {count!r}"
    if number <= 0:
        return 0, "no NVIDIA GPU: NVML sees no devices"
    return number, None


def _process_rows(nvml: Any, count: int, pids: Collection[int] | None) -> list[ProcessMemory]:
    """Compute and graphics processes per device; a process in both lists is counted once.

    NVML reports host pids: inside a container with its own pid namespace a filter on the
    container's pids matches nothing, and the panel then shows no process rows.
    """
    rows: list[ProcessMemory] = []
    seen: set[tuple[int, int]] = set()
    for index in range(count):
        handle = _call(nvml, "nvmlDeviceGetHandleByIndex", index)
        if handle is None:
            continue
        for function_name in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            for process in _call(nvml, function_name, handle) or ():
                pid = _as_int(getattr(process, "pid", None))
                if pid is None or (pids is not None and pid not in pids):
                    continue
                if (pid, index) in seen:
                    continue
                seen.add((pid, index))
                used = _as_int(getattr(process, "usedGpuMemory", None))
                rows.append(ProcessMemory(pid=pid, device_index=index, used=used))
    return rows


def probe_gpus(*, processes: bool = True, pids: Collection[int] | None = None) -> GpuSnapshot:
    """One synchronous sample of every GPU (and, unless `processes` is False, of the
    processes using them, limited to `pids` when given). Never raises."""
    taken = time.time()
    nvml, failure = _nvml()
    if nvml is None:
        return GpuSnapshot(time=taken, unavailable=failure)
    driver = _as_text(_call(nvml, "nvmlSystemGetDriverVersion"))
    count, failure = _device_count(nvml)
    if failure is not None:
        return GpuSnapshot(time=taken, unavailable=failure, driver=driver)
    devices = tuple(_sample_device(nvml, index) for index in range(count))
    rows = tuple(_process_rows(nvml, count, pids)) if processes else ()
    return GpuSnapshot(
        time=taken,
        devices=devices,
        processes=rows,
        driver=driver,
        energy_mj=_energy_readings(nvml, count),
    )


def probe_devices() -> GpuSnapshot:
    """A sample without the per-process query, which is slower and needed less often."""
    return probe_gpus(processes=False)


def probe_processes(pids: Collection[int] | None = None) -> tuple[ProcessMemory, ...]:
    """The GPU memory of each process (only `pids` when given); empty without a GPU."""
    nvml, _ = _nvml()
    if nvml is None:
        return ()
    count, failure = _device_count(nvml)
    if failure is not None:
        return ()
    return tuple(_process_rows(nvml, count, pids))


# -- the sampler -----------------------------------------------------------------------

SampleFunction = Callable[[], GpuSnapshot]
ProcessFunction = Callable[[Collection[int] | None], tuple[ProcessMemory, ...]]


class GpuSampler:
    """One daemon thread sampling every `interval` seconds into a ring of `history` snapshots.

    Processes are sampled every `process_every` seconds (listing them costs more than the
    device counters and changes less often); the list carries over into the snapshots in
    between. `pids` limits them to some processes, e.g. the trainer's.

    A snapshot without a GPU ends the sampling when `stop_without_gpu` is set (the default):
    a failed nvmlInit is not retried in this process, so later samples could only repeat it.
    `on_sample` runs on the sampler thread after each snapshot is stored.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        history: int = DEFAULT_HISTORY,
        *,
        pids: Callable[[], set[int]] | None = None,
        process_every: float = DEFAULT_PROCESS_EVERY,
        sample: SampleFunction = probe_devices,
        sample_processes: ProcessFunction | None = probe_processes,
        on_sample: Callable[[GpuSnapshot], None] | None = None,
        stop_without_gpu: bool = True,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if history < 1:
            raise ValueError(f"history must hold at least one snapshot, not {history}")
        self.interval = interval
        self.process_every = process_every
        self._pids = pids
        self._sample = sample
        self._sample_processes = sample_processes
        self._on_sample = on_sample
        self._stop_without_gpu = stop_without_gpu
        self._ring: collections.deque[GpuSnapshot] = collections.deque(maxlen=history)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: tuple[ProcessMemory, ...] = ()
        self._processes_due = 0.0
        self.last_error: Exception | None = None

    # Reads: the ring is only touched under the lock, and snapshots are immutable.
    def latest(self) -> GpuSnapshot | None:
        with self._lock:
            return self._ring[-1] if self._ring else None

    def history(self, seconds: float | None = None) -> list[GpuSnapshot]:
        """The snapshots of the last `seconds` up to the newest one (all kept when None).

        The window ends at the newest snapshot rather than the clock, so a sampler that
        stopped (or a recording read back) still shows the minutes before its end.
        """
        with self._lock:
            snapshots = list(self._ring)
        if seconds is None or not snapshots:
            return snapshots
        start = snapshots[-1].time - seconds
        return [snapshot for snapshot in snapshots if snapshot.time >= start]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> GpuSampler:
        if self._thread is not None:
            raise RuntimeError("a GpuSampler starts once")
        self._thread = threading.Thread(target=self._run, name="ftod-gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end on its own (no GPU); True when it has ended."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> GpuSampler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        # The first sample is taken before looking at the stop flag, so start() then
        # stop() still records one snapshot (the recorder's "no GPU" line relies on it).
        while True:
            began = time.monotonic()
            try:
                snapshot = self._take(began)
                with self._lock:
                    self._ring.append(snapshot)
                if self._on_sample is not None:
                    self._on_sample(snapshot)
            except Exception as error:  # noqa: BLE001 - monitoring must outlive its own bugs
                # The thread keeps sampling (a full disk or a failing injected function
                # should not blank the charts for good); the error is kept for a reader.
                self.last_error = error
            else:
                if self._stop_without_gpu and not snapshot.available:
                    return
            elapsed = time.monotonic() - began
            if self._stopping.wait(max(0.0, self.interval - elapsed)):
                return

    def _take(self, now: float) -> GpuSnapshot:
        snapshot = self._sample()
        if self._sample_processes is None or not snapshot.available:
            return snapshot
        if now >= self._processes_due:
            pids = self._pids() if self._pids is not None else None
            self._processes = self._sample_processes(pids)
            self._processes_due = now + self.process_every
        return replace(snapshot, processes=self._processes)


# -- system.jsonl ----------------------------------------------------------------------


def snapshot_to_record(snapshot: GpuSnapshot) -> dict[str, Any]:
    return {
        "time": snapshot.time,
        "devices": [
            {
                "index": device.index,
                "name": device.name,
                "memory_used": device.memory_used,
                "memory_total": device.memory_total,
                "utilization": device.utilization,
                "memory_utilization": device.memory_utilization,
                "temperature": device.temperature,
                "power_w": device.power_w,
                "power_limit_w": device.power_limit_w,
                "energy_mj": snapshot.energy_of(device.index),
            }
            for device in snapshot.devices
        ],
        "processes": [
            {"pid": process.pid, "device_index": process.device_index, "used": process.used}
            for process in snapshot.processes
        ],
        "unavailable": snapshot.unavailable,
        "driver": snapshot.driver,
    }


def _device_from_record(raw: Any, position: int) -> DeviceSample | None:
    if not isinstance(raw, Mapping):
        return None
    index = _as_int(raw.get("index"))
    return DeviceSample(
        # A line without the index still lists devices in NVML order.
        index=position if index is None else index,
        name=_as_text(raw.get("name")),
        memory_used=_as_int(raw.get("memory_used")),
        memory_total=_as_int(raw.get("memory_total")),
        utilization=_as_float(raw.get("utilization")),
        memory_utilization=_as_float(raw.get("memory_utilization")),
        temperature=_as_float(raw.get("temperature")),
        power_w=_as_float(raw.get("power_w")),
        power_limit_w=_as_float(raw.get("power_limit_w")),
    )


def _process_from_record(raw: Any) -> ProcessMemory | None:
    if not isinstance(raw, Mapping):
        return None
    pid = _as_int(raw.get("pid"))
    device_index = _as_int(raw.get("device_index"))
    if pid is None or device_index is None:
        return None
    return ProcessMemory(pid=pid, device_index=device_index, used=_as_int(raw.get("used")))


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def record_to_snapshot(record: Any) -> GpuSnapshot | None:
    """A snapshot from one system.jsonl object; None when it has no usable time.

    Unknown keys are ignored, values of the wrong type read as None, and device or
    process entries that are not objects (or processes without pid/device) are skipped.
    """
    if not isinstance(record, Mapping):
        return None
    taken = _as_float(record.get("time"))
    if taken is None:
        return None
    devices: list[DeviceSample] = []
    energy: list[tuple[int, int]] = []
    for position, raw in enumerate(_items(record.get("devices"))):
        device = _device_from_record(raw, position)
        if device is None:
            continue
        devices.append(device)
        counter = _as_int(raw.get("energy_mj"))
        if counter is not None:
            energy.append((device.index, counter))
    processes = (_process_from_record(raw) for raw in _items(record.get("processes")))
    return GpuSnapshot(
        time=taken,
        devices=tuple(devices),
        energy_mj=tuple(energy),
        processes=tuple(process for process in processes if process is not None),
        unavailable=_as_text(record.get("unavailable")),
        driver=_as_text(record.get("driver")),
    )


class SystemRecorder:
    """The trainer's GPU log: each snapshot becomes one flushed line of `path`.

    Processes are limited to `pid` (the trainer). Without a GPU exactly one line is written,
    with `unavailable` saying why, and sampling stops.
    """

    def __init__(
        self,
        path: Path,
        pid: int,
        interval: float = DEFAULT_INTERVAL,
        process_every: float = DEFAULT_PROCESS_EVERY,
        *,
        sample: SampleFunction = probe_devices,
        sample_processes: ProcessFunction | None = probe_processes,
    ) -> None:
        self.path = path
        self.pid = pid
        self._writer: EventWriter | None = None
        self._sampler = GpuSampler(
            interval,
            # Lines go to the file; the ring only needs the newest for latest().
            history=1,
            pids=lambda: {pid},
            process_every=process_every,
            sample=sample,
            sample_processes=sample_processes,
            on_sample=self._write,
        )

    @property
    def sampler(self) -> GpuSampler:
        return self._sampler

    def start(self) -> SystemRecorder:
        self._writer = EventWriter(self.path)
        self._sampler.start()
        return self

    def stop(self) -> None:
        self._sampler.stop()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> SystemRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write(self, snapshot: GpuSnapshot) -> None:
        if self._writer is not None:
            self._writer.write(snapshot_to_record(snapshot))
