"""The machine the numbers come from: its description, its CPU's name, and folder checks."""

from __future__ import annotations

import json

from minikit import system


def test_machine_description_has_every_field():
    machine = system.machine_description()
    assert set(machine) == {"machine", "system", "cpu_count", "cpu_model"}
    assert all(machine[k] for k in ("machine", "system", "cpu_model"))
    json.dumps(machine)  # it goes into a cache key


def test_cpu_model_name_from_x86_arm_or_no_cpuinfo(tmp_path, monkeypatch):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-1165G7\n")
    assert system._cpu_model_name(x86) == "Intel(R) Core(TM) i7-1165G7"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n")
    assert system._cpu_model_name(arm) == "implementer 0x41, part 0xd0c"
    monkeypatch.setattr(system.platform, "processor", lambda: "")
    assert system._cpu_model_name(tmp_path / "missing") == "unknown"
