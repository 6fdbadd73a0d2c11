"""The machine the numbers come from: its description, its CPU's name, and folder checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minikit import system


def test_machine_description_has_every_field():
    machine = system.machine_description()
    assert set(machine) == {"machine", "system", "cpu_count", "cpu_model"}
    assert all(machine[k] for k in ("machine", "system", "cpu_model"))
    json.dumps(machine)  # it goes into a cache key


def test_cpu_identity_leaves_out_only_the_core_count(monkeypatch):
    identity = system.cpu_identity()
    assert identity == {k: v for k, v in system.machine_description().items() if k != "cpu_count"}
    monkeypatch.setattr(system.os, "cpu_count", lambda: 1)  # a 1-core build pod and a 2-core session: one key
    assert system.cpu_identity() == identity


def test_cpu_model_name_from_x86_arm_or_no_cpuinfo(tmp_path, monkeypatch):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-1165G7\n")
    assert system._cpu_model_name(x86) == "Intel(R) Core(TM) i7-1165G7"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n")
    assert system._cpu_model_name(arm) == "implementer 0x41, part 0xd0c"
    monkeypatch.setattr(system.platform, "processor", lambda: "")
    assert system._cpu_model_name(tmp_path / "missing") == "unknown"


def test_cpu_flags_from_x86_arm_or_no_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert system.cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16", "amx_tile"}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert system.cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert system.cpu_flags(tmp_path / "missing") == set()


# --- prove_writable ---------------------------------------------------------------------------------------


def test_prove_writable_creates_the_folder_writes_a_probe_and_removes_it(tmp_path, monkeypatch):
    folder = tmp_path / "new" / "out"
    written = []
    write_text = Path.write_text

    def recording_write_text(self, *args, **kwargs):
        written.append(self)
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", recording_write_text)
    system.prove_writable(folder)
    assert folder.is_dir()
    (probe,) = written
    assert probe.parent == folder and probe.name.startswith(".minikit-write-test-")
    assert list(folder.iterdir()) == []  # the probe is gone
    system.prove_writable(folder)  # an existing folder is fine too
    assert list(folder.iterdir()) == []


def test_prove_writable_raises_oserror_where_no_folder_can_be(tmp_path):
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    with pytest.raises(OSError):
        system.prove_writable(a_file / "out")  # a folder under a file
    with pytest.raises(OSError):
        system.prove_writable(a_file)  # the file itself
    assert a_file.read_text() == "not a folder"
