"""The GPU slot pool: real fcntl locks held by real processes (no GPU needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rnnbench.io import read_json
from rnnbench.training import gpus

# A process that takes a slot, prints "device slot", and holds it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from rnnbench.training.gpus import NoFreeGpu, acquire
devices, slots, folder, wait = sys.argv[1].split(","), int(sys.argv[2]), Path(sys.argv[3]), \
    float(sys.argv[4]) if len(sys.argv) > 4 else None
try:
    claim = acquire(devices, slots, folder, wait_s=wait, poll_s=0.05)
except NoFreeGpu as err:
    sys.exit(str(err))
print(claim.device, claim.slot, flush=True)
sys.stdin.read()
"""


def holder(devices: str, slots: int, folder: Path, wait_s: float | None = None):
    """Start a process that claims a slot and keeps it while its stdin stays open."""
    args = [sys.executable, "-c", HOLDER, devices, str(slots), str(folder)]
    if wait_s is not None:
        args.append(str(wait_s))
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def claimed(proc: subprocess.Popen) -> tuple[str, int]:
    """The (device, slot) a holder printed."""
    device, slot = proc.stdout.readline().split()
    return device, int(slot)


def release(*procs: subprocess.Popen) -> None:
    """Let holders exit and reap them."""
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
    for p in procs:
        p.wait(timeout=30)


def test_concurrent_processes_never_hold_the_same_device_slot(tmp_path):
    procs = [holder("0,1,2", 2, tmp_path) for _ in range(6)]  # as many as slots, all at once
    try:
        got = [claimed(p) for p in procs]
    finally:
        release(*procs)
    assert sorted(got) == [(d, s) for d in ("0", "1", "2") for s in (0, 1)]


def test_runs_fill_every_gpu_before_sharing_one(tmp_path):
    first = holder("0,1", 2, tmp_path)
    try:
        a = claimed(first)
        second = holder("0,1", 2, tmp_path)
        b = claimed(second)
    finally:
        release(first, second)
    assert (a, b) == (("0", 0), ("1", 0))


def test_two_runs_share_one_gpu_and_a_third_waits_for_a_free_slot(tmp_path):
    a, b = holder("0", 2, tmp_path), holder("0", 2, tmp_path)
    c = None
    try:
        held_by_a = claimed(a)
        assert sorted([held_by_a, claimed(b)]) == [("0", 0), ("0", 1)]
        c = holder("0", 2, tmp_path)
        time.sleep(2)
        assert c.poll() is None  # still waiting: both slots are held
        release(a)
        start = time.monotonic()
        assert claimed(c) == held_by_a
        assert time.monotonic() - start < 5
    finally:
        release(a, b, *([c] if c else []))


def test_waiting_longer_than_the_limit_fails_naming_the_holder(tmp_path):
    a = holder("0", 1, tmp_path)
    try:
        claimed(a)
        late = holder("0", 1, tmp_path, wait_s=0.5)
        _, err = late.communicate(timeout=30)
    finally:
        release(a)
    assert late.returncode == 1
    assert "no free GPU slot after 0.5 s" in err and f"pid {a.pid} on " in err


def test_slot_of_a_process_killed_with_sigkill_is_free_again(tmp_path):
    a = holder("0", 1, tmp_path)
    assert claimed(a) == ("0", 0)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    b = holder("0", 1, tmp_path, wait_s=5)
    try:
        assert claimed(b) == ("0", 0)
    finally:
        release(a, b)


def test_claim_makes_only_the_claimed_gpu_visible(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    a = holder("3,5", 1, tmp_path)  # another run holds GPU 3
    try:
        claimed(a)
        claim = gpus.claim_gpu("auto", 1, tmp_path, wait_s=5)
        assert claim is not None and claim.device == "5"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
        claim.release()
    finally:
        release(a)


@pytest.mark.parametrize("device, env", [
    ("cpu", {"CUDA_VISIBLE_DEVICES": "0,1"}),  # a CPU run needs no GPU
    ("auto", {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "42"}),  # SLURM picked already
    ("auto", {"CUDA_VISIBLE_DEVICES": ""}),  # no GPU visible
    ("cuda", {"CUDA_VISIBLE_DEVICES": "-1"}),
])
def test_claim_leaves_the_environment_alone_where_there_is_nothing_to_choose(
        device, env, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert gpus.claim_gpu(device, 1, tmp_path) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"]
    assert not list(tmp_path.iterdir())


def test_without_cuda_visible_devices_the_gpus_come_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "bin/nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\n"
                    "echo 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent), prepend=os.pathsep)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpus.nvidia_smi_devices() == ["0", "1"]
    claim = gpus.claim_gpu("auto", 1, tmp_path / "locks")
    assert claim is not None and (claim.device, claim.slot) == ("0", 0)
    # nvidia-smi numbers GPUs by PCI bus, so CUDA must too for the index to mean the same GPU
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    claim.release()


def test_cuda_visible_devices_list_stops_at_a_negative_index_like_cuda():
    assert gpus.parse_visible("0, 2,-1,3") == ["0", "2"]
    assert gpus.parse_visible("GPU-ab12,MIG-cd34") == ["GPU-ab12", "MIG-cd34"]
    assert gpus.parse_visible("") == []


def test_importing_the_pool_does_not_import_torch():
    code = "import sys, rnnbench.training.gpus; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_training_runs_on_the_gpu_no_other_run_holds(tiny_data, tmp_path):
    locks = tmp_path / "locks"
    a = holder("0,1", 1, locks)  # another training run holds GPU 0
    try:
        assert claimed(a) == ("0", 0)
        env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
        env.update(CUDA_VISIBLE_DEVICES="0,1", RNNBENCH_GPU_LOCK_DIR=str(locks))
        # device auto: a CPU-only torch falls back to the CPU after the claim
        cmd = [sys.executable, "-m", "rnnbench.training.train", "--cell", "gru", "--hidden", "8",
               "--epochs", "1", "--batch-size", "4", "--bptt", "10", "--max-batches", "3",
               "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "run"),
               "--checkpoint", str(tmp_path / "c.pt"), "--threads", "1"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    finally:
        release(a)
    assert result.returncode == 0, result.stderr
    assert "GPU 1, slot 0 of 1" in result.stderr
    assert read_json(tmp_path / "run/train.json")["cuda_visible_devices"] == "1"
    assert len(pd.read_csv(tmp_path / "run/history.csv")) == 1


def test_pick_device_falls_back_to_the_cpu_and_refuses_a_missing_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: nothing to fall back from")
    assert gpus.pick_device("auto") == torch.device("cpu")
    assert gpus.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit, match="device 'cuda' was requested.*`device: auto`"):
        gpus.pick_device("cuda")
