"""The time-dilated scale model (issue 25) as the lab runs it: the user's settings in, the settings that run out.

`scale_model(s, cache)` is labkit.config.dilation's plan for this machine: its cores, and the CPU model's
speed ratio measured on the masked code path the lab's TLS settings negotiate (labkit.lab.conditions.
cpu_emulation, cached per CPU, OpenSSL version and mask). None when `machine` asks for nothing (k = 1 and no
vcpus): the lab runs the settings as given. A value this machine cannot give raises SettingsError with
`machine_problems`' reason, before anything is made. The CPU shares themselves are the server CPU
condition's (cpu_emulation.CoreModel reads `machine` from the dilated settings it runs).
"""
from __future__ import annotations

import os
from pathlib import Path

from ...config.dilation import Host, Plan, dilate
from ...config.settings import LabSettings
from .cpu_emulation import emulation


def asks(s: LabSettings) -> bool:
    return s.machine.dilation != 1 or s.machine.vcpus is not None


def host(s: LabSettings, cache: Path) -> Host:
    """This machine for the plan: its cores and the model's speed ratio (1: the host's CPU or native speed)."""
    emu = emulation(s, cache)
    return Host(os.cpu_count() or 1, emu.ratio if emu and emu.emulate else 1.0)


def scale_model(s: LabSettings, cache: Path) -> Plan | None:
    """The plan the lab runs for `s` (None: nothing to dilate); SettingsError when this machine cannot."""
    return dilate(s, host(s, cache)) if asks(s) else None
