"""NVML sampling against a fake pynvml, the real no-GPU path, the sampler and system.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from core.gpu import (
    DeviceSample,
    GpuSampler,
    GpuSnapshot,
    ProcessMemory,
    SystemRecorder,
    TorchMemory,
    probe_devices,
    probe_gpus,
    probe_processes,
    record_to_snapshot,
    snapshot_to_record,
)

GIB = 1024**3
WAIT = 10.0
ROOT = Path(__file__).resolve().parent.parent


class FakeNVMLError(Exception):
    pass


class FakeLibraryNotFound(FakeNVMLError):
    pass


class FakeNotSupported(FakeNVMLError):
    pass


def not_supported(*args: Any) -> Any:
    raise FakeNotSupported("Not Supported")


def memory_info(handle: str, version: int | None = None) -> SimpleNamespace:
    used = 40 * GIB if handle == "gpu-0" else 1 * GIB
    return SimpleNamespace(used=used, total=80 * GIB, free=80 * GIB - used)


def compute_processes(handle: str) -> list[SimpleNamespace]:
    if handle == "gpu-0":
        return [
            SimpleNamespace(pid=4242, usedGpuMemory=39 * GIB),
            # Inside containers and on Windows NVML cannot tell a process's memory.
            SimpleNamespace(pid=7, usedGpuMemory=None),
        ]
    return [SimpleNamespace(pid=4242, usedGpuMemory=GIB // 2)]


def graphics_processes(handle: str) -> list[SimpleNamespace]:
    # The same process in both lists must be counted once.
    return [SimpleNamespace(pid=4242, usedGpuMemory=39 * GIB)] if handle == "gpu-0" else []


class Calls:
    def __init__(self) -> None:
        self.init = 0


def fake_nvml(calls: Calls | None = None, **overrides: Any) -> ModuleType:
    """A pynvml stand-in for two H100s; an override of None removes the function."""
    counter = calls or Calls()

    def init() -> None:
        counter.init += 1

    module = ModuleType("pynvml")
    attributes: dict[str, Any] = {
        "NVMLError": FakeNVMLError,
        "NVMLError_LibraryNotFound": FakeLibraryNotFound,
        "NVMLError_NotSupported": FakeNotSupported,
        "NVML_TEMPERATURE_GPU": 0,
        "nvmlMemory_v2": 0x02000028,
        "nvmlInit": init,
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
        "nvmlDeviceGetCount": lambda: 2,
        "nvmlDeviceGetHandleByIndex": lambda index: f"gpu-{index}",
        # Older bindings return bytes.
        "nvmlDeviceGetName": lambda handle: b"NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetMemoryInfo": memory_info,
        "nvmlDeviceGetUtilizationRates": lambda handle: SimpleNamespace(gpu=87, memory=40),
        "nvmlDeviceGetTemperature": lambda handle, sensor: 64,
        "nvmlDeviceGetPowerUsage": lambda handle: 312_500,
        "nvmlDeviceGetEnforcedPowerLimit": lambda handle: 700_000,
        "nvmlDeviceGetComputeRunningProcesses": compute_processes,
        "nvmlDeviceGetGraphicsRunningProcesses": graphics_processes,
    }
    attributes.update(overrides)
    for name, value in attributes.items():
        if value is not None:
            setattr(module, name, value)
    return module


@pytest.fixture
def use_nvml(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], None]:
    def install(module: ModuleType) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", module)

    return install


def test_importing_samples_nothing() -> None:
    """core must not pull in textual, rich or torch, and pynvml only when sampling."""
    probe = (
        "import sys, core.gpu, core.runs.series; "
        "print(','.join(sorted(m for m in ('textual', 'rich', 'torch', 'pynvml') "
        "if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


# -- probe_gpus ------------------------------------------------------------------------


def test_full_sample(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(fake_nvml())
    snapshot = probe_gpus()
    assert snapshot.available and snapshot.unavailable is None
    assert snapshot.driver == "550.54.15"
    assert snapshot.devices[0] == DeviceSample(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        memory_used=40 * GIB,
        memory_total=80 * GIB,
        utilization=87.0,
        memory_utilization=40.0,
        temperature=64.0,
        power_w=312.5,
        power_limit_w=700.0,
    )
    assert [device.index for device in snapshot.devices] == [0, 1]
    assert snapshot.devices[1].memory_used == GIB
    assert snapshot.processes == (
        ProcessMemory(pid=4242, device_index=0, used=39 * GIB),
        ProcessMemory(pid=7, device_index=0, used=None),
        ProcessMemory(pid=4242, device_index=1, used=GIB // 2),
    )


def test_process_filter_and_device_only_sample(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(fake_nvml())
    assert {row.pid for row in probe_gpus(pids={4242}).processes} == {4242}
    assert probe_devices().processes == ()
    assert probe_processes({7}) == (ProcessMemory(pid=7, device_index=0, used=None),)


def test_nvml_init_runs_once_per_process(use_nvml: Callable[[ModuleType], None]) -> None:
    calls = Calls()
    use_nvml(fake_nvml(calls))
    for _ in range(3):
        probe_gpus()
    probe_processes()
    assert calls.init == 1


@pytest.mark.parametrize(
    ("broken", "fields"),
    [
        ("nvmlDeviceGetName", {"name"}),
        ("nvmlDeviceGetMemoryInfo", {"memory_used", "memory_total"}),
        ("nvmlDeviceGetUtilizationRates", {"utilization", "memory_utilization"}),
        ("nvmlDeviceGetTemperature", {"temperature"}),
        ("nvmlDeviceGetPowerUsage", {"power_w"}),
    ],
)
@pytest.mark.parametrize("how", ["raises", "missing"])
def test_a_failing_query_leaves_only_its_fields_none(
    use_nvml: Callable[[ModuleType], None], broken: str, fields: set[str], how: str
) -> None:
    override: dict[str, Any] = {broken: not_supported if how == "raises" else None}
    use_nvml(fake_nvml(**override))
    device = probe_gpus().devices[0]
    for name in DeviceSample.__dataclass_fields__:
        value = getattr(device, name)
        assert (value is None) == (name in fields), name


def test_power_limit_falls_back_then_reads_none(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(
        fake_nvml(
            nvmlDeviceGetEnforcedPowerLimit=not_supported,
            nvmlDeviceGetPowerManagementLimit=lambda handle: 650_000,
        )
    )
    assert probe_gpus().devices[0].power_limit_w == 650.0
    use_nvml(fake_nvml(nvmlDeviceGetEnforcedPowerLimit=not_supported))
    assert probe_gpus().devices[0].power_limit_w is None


def test_memory_info_v1_when_v2_is_missing(use_nvml: Callable[[ModuleType], None]) -> None:
    def v1_only(handle: str, version: int | None = None) -> SimpleNamespace:
        if version is not None:
            raise FakeNVMLError("Function Not Found")
        return SimpleNamespace(used=3 * GIB, total=16 * GIB)

    use_nvml(fake_nvml(nvmlDeviceGetMemoryInfo=v1_only))
    device = probe_gpus().devices[0]
    assert (device.memory_used, device.memory_total) == (3 * GIB, 16 * GIB)


def test_a_device_without_handle_is_all_none(use_nvml: Callable[[ModuleType], None]) -> None:
    def only_first(index: int) -> str:
        if index == 1:
            raise FakeNVMLError("GPU is lost")
        return "gpu-0"

    use_nvml(fake_nvml(nvmlDeviceGetHandleByIndex=only_first))
    snapshot = probe_gpus()
    assert snapshot.devices[1] == DeviceSample(index=1)
    assert snapshot.devices[0].name is not None
    assert all(row.device_index == 0 for row in snapshot.processes)


def test_processes_that_fail_are_left_out(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(
        fake_nvml(
            nvmlDeviceGetComputeRunningProcesses=not_supported,
            nvmlDeviceGetGraphicsRunningProcesses=None,
        )
    )
    snapshot = probe_gpus()
    assert snapshot.processes == () and len(snapshot.devices) == 2


def test_library_not_found_is_the_no_gpu_state(use_nvml: Callable[[ModuleType], None]) -> None:
    def missing() -> None:
        raise FakeLibraryNotFound("NVML Shared Library Not Found")

    use_nvml(fake_nvml(nvmlInit=missing))
    snapshot = probe_gpus()
    assert snapshot.unavailable == "no NVIDIA GPU: NVML library not found"
    assert snapshot.devices == () and snapshot.processes == ()
    assert probe_processes() == ()


def test_other_init_failures_name_the_error(use_nvml: Callable[[ModuleType], None]) -> None:
    def broken() -> None:
        raise FakeNVMLError("Unknown Error")

    use_nvml(fake_nvml(nvmlInit=broken))
    assert probe_gpus().unavailable == "NVML init failed: Unknown Error"


def test_no_devices_or_failed_count(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(fake_nvml(nvmlDeviceGetCount=lambda: 0))
    assert probe_gpus().unavailable == "no NVIDIA GPU: NVML sees no devices"
    use_nvml(fake_nvml(nvmlDeviceGetCount=not_supported))
    snapshot = probe_gpus()
    assert snapshot.unavailable == "NVML could not count GPUs: Not Supported"
    assert snapshot.driver == "550.54.15"


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import pynvml` raise ImportError.
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert probe_gpus().unavailable == "no NVIDIA GPU: nvidia-ml-py (pynvml) is not installed"


def test_the_real_probe_never_raises() -> None:
    """On this machine (no GPU) the real pynvml finds no library: an unavailable snapshot."""
    snapshot = probe_gpus()
    if snapshot.available:
        assert snapshot.devices
    else:
        assert snapshot.devices == () and snapshot.processes == ()
        assert snapshot.unavailable
    assert probe_gpus().unavailable == snapshot.unavailable


# -- the sampler -----------------------------------------------------------------------


class Clock:
    """An injected sample function: snapshot n has time n; sets `reached` at `target`."""

    def __init__(self, target: int, *, available: bool = True) -> None:
        self.count = 0
        self.target = target
        self.available = available
        self.reached = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> GpuSnapshot:
        with self.lock:
            self.count += 1
            count = self.count
        if count >= self.target:
            self.reached.set()
        if not self.available:
            return GpuSnapshot(time=float(count), unavailable="no NVIDIA GPU: test")
        device = DeviceSample(index=0, memory_used=count, memory_total=100)
        return GpuSnapshot(time=float(count), devices=(device,))


class ProcessProbe:
    def __init__(self) -> None:
        self.calls: list[Collection[int] | None] = []

    def __call__(self, pids: Collection[int] | None) -> tuple[ProcessMemory, ...]:
        self.calls.append(pids)
        return (ProcessMemory(pid=1234, device_index=0, used=len(self.calls)),)


def test_ring_is_bounded_and_history_is_a_window() -> None:
    clock = Clock(target=12)
    sampler = GpuSampler(interval=0.001, history=5, sample=clock, sample_processes=None)
    with sampler:
        assert clock.reached.wait(WAIT)
    kept = sampler.history()
    assert len(kept) == 5
    times = [snapshot.time for snapshot in kept]
    assert times == [times[0] + offset for offset in range(5)]
    latest = sampler.latest()
    assert latest is not None and latest.time == times[-1]
    assert [snapshot.time for snapshot in sampler.history(2.0)] == times[-3:]
    assert not sampler.running


def test_latest_is_none_before_the_first_sample() -> None:
    sampler = GpuSampler(sample=Clock(target=1), sample_processes=None)
    assert sampler.latest() is None and sampler.history(60) == []


def test_processes_are_sampled_less_often_and_carried_over() -> None:
    clock = Clock(target=20)
    processes = ProcessProbe()
    sampler = GpuSampler(
        interval=0.001,
        pids=lambda: {1234},
        process_every=3600.0,
        sample=clock,
        sample_processes=processes,
    )
    with sampler:
        assert clock.reached.wait(WAIT)
    assert processes.calls == [{1234}]
    assert all(snapshot.processes[0].pid == 1234 for snapshot in sampler.history())


def test_process_every_zero_samples_each_time() -> None:
    clock = Clock(target=5)
    processes = ProcessProbe()
    with GpuSampler(
        interval=0.001, process_every=0.0, sample=clock, sample_processes=processes
    ) as sampler:
        assert clock.reached.wait(WAIT)
    assert len(processes.calls) == clock.count
    assert processes.calls[0] is None
    latest = sampler.latest()
    assert latest is not None and latest.processes[0].used == clock.count


def test_sampling_stops_by_itself_without_gpu() -> None:
    clock = Clock(target=1, available=False)
    processes = ProcessProbe()
    sampler = GpuSampler(interval=0.001, sample=clock, sample_processes=processes).start()
    assert sampler.wait(WAIT)
    assert clock.count == 1 and processes.calls == []
    latest = sampler.latest()
    assert latest is not None and latest.unavailable == "no NVIDIA GPU: test"
    sampler.stop()


def test_a_failing_sample_does_not_end_the_thread() -> None:
    clock = Clock(target=3)

    def flaky() -> GpuSnapshot:
        if clock.count == 0:
            clock.count += 1
            raise RuntimeError("boom")
        return clock()

    with GpuSampler(interval=0.001, sample=flaky, sample_processes=None) as sampler:
        assert clock.reached.wait(WAIT)
    assert isinstance(sampler.last_error, RuntimeError)
    assert sampler.latest() is not None


def test_sampler_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        GpuSampler(interval=0)
    with pytest.raises(ValueError):
        GpuSampler(history=0)
    sampler = GpuSampler(interval=0.001, sample=Clock(target=1), sample_processes=None)
    with sampler, pytest.raises(RuntimeError):
        sampler.start()


# -- system.jsonl ----------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_recorder_writes_one_line_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "run" / "system.jsonl"
    clock = Clock(target=4)
    processes = ProcessProbe()
    with SystemRecorder(
        path, pid=1234, interval=0.001, sample=clock, sample_processes=processes
    ) as recorder:
        # Sample 4 is taken only after sample 3 was written.
        assert clock.reached.wait(WAIT)
    assert not recorder.sampler.running
    records = read_lines(path)
    assert len(records) == clock.count >= 3
    snapshots = [record_to_snapshot(record) for record in records]
    assert [snapshot.time for snapshot in snapshots if snapshot] == [
        float(n) for n in range(1, clock.count + 1)
    ]
    assert processes.calls[0] == {1234}
    first = snapshots[0]
    assert first is not None and first.processes[0].pid == 1234


def test_recorder_without_gpu_writes_one_line(tmp_path: Path) -> None:
    path = tmp_path / "system.jsonl"
    recorder = SystemRecorder(path, pid=1, interval=0.001, sample=Clock(1, available=False))
    recorder.start()
    assert recorder.sampler.wait(WAIT)
    recorder.stop()
    (record,) = read_lines(path)
    assert record["unavailable"] == "no NVIDIA GPU: test" and record["devices"] == []


def test_recorder_with_nvml_missing_writes_one_line(
    tmp_path: Path, use_nvml: Callable[[ModuleType], None]
) -> None:
    def missing() -> None:
        raise FakeLibraryNotFound("NVML Shared Library Not Found")

    use_nvml(fake_nvml(nvmlInit=missing))
    path = tmp_path / "system.jsonl"
    with SystemRecorder(path, pid=1, interval=0.001) as recorder:
        assert recorder.sampler.wait(WAIT)
    (record,) = read_lines(path)
    assert record["unavailable"] == "no NVIDIA GPU: NVML library not found"


def test_recorder_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "system.jsonl"
    for _ in range(2):
        with SystemRecorder(path, pid=1, sample=Clock(1, available=False)) as recorder:
            assert recorder.sampler.wait(WAIT)
    assert len(read_lines(path)) == 2


def test_record_round_trip(use_nvml: Callable[[ModuleType], None]) -> None:
    use_nvml(fake_nvml())
    snapshot = probe_gpus()
    line = json.dumps(snapshot_to_record(snapshot))
    assert record_to_snapshot(json.loads(line)) == snapshot
    missing = GpuSnapshot(time=5.0, unavailable="no NVIDIA GPU: NVML library not found")
    assert record_to_snapshot(json.loads(json.dumps(snapshot_to_record(missing)))) == missing
    assert set(snapshot_to_record(snapshot)) == {
        "time",
        "devices",
        "processes",
        "unavailable",
        "driver",
    }


@pytest.mark.parametrize(
    "junk",
    [None, 3, "text", [], {}, {"time": "now"}, {"time": float("nan")}, {"time": True}],
)
def test_records_without_a_usable_time_read_as_none(junk: Any) -> None:
    assert record_to_snapshot(junk) is None


def test_tolerant_reading_of_odd_records() -> None:
    record = {
        "time": 10,
        "extra": {"from": "a newer version"},
        "driver": 550,
        "unavailable": None,
        "devices": [
            "not a device",
            {
                "index": "0",
                "name": 7,
                "memory_used": 1.5,
                "memory_total": "80G",
                "utilization": "high",
                "memory_utilization": float("nan"),
                "temperature": True,
                "power_w": None,
            },
            {"index": 3, "memory_used": 2048.0, "temperature": 61},
        ],
        "processes": [
            1,
            {"pid": "a", "device_index": 0},
            {"pid": 3},
            {"pid": 3, "device_index": 0, "used": "big"},
        ],
    }
    snapshot = record_to_snapshot(record)
    assert snapshot == GpuSnapshot(
        time=10.0,
        devices=(
            DeviceSample(index=1),
            DeviceSample(index=3, memory_used=2048, temperature=61.0),
        ),
        processes=(ProcessMemory(pid=3, device_index=0, used=None),),
        unavailable=None,
        driver=None,
    )
    assert record_to_snapshot({"time": 1, "devices": "nope", "processes": {}}) == GpuSnapshot(
        time=1.0
    )


def test_torch_memory_from_a_train_event() -> None:
    event = {"type": "train", "mem_allocated": 5 * GIB, "mem_reserved": 6 * GIB, "mem_peak": None}
    assert TorchMemory.from_train_event(event) == TorchMemory(5 * GIB, 6 * GIB, None)
    assert TorchMemory.from_train_event({"type": "train", "mem_allocated": None}) is None
