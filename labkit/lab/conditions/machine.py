"""The time-dilated scale model (issue 25) as the lab runs it: the user's settings in, the settings that run out.

`scale_model(s, meter)` is labkit.config.dilation's plan for this machine: its cores, and the CPU model's
speed ratio measured on the masked code path the lab's TLS settings negotiate (labkit.lab.conditions.
cpu_emulation), measured by the lab's meter when the lab is made (labkit.lab.conditions.speed_meter: the
same figure the CPU condition then runs with, one per run). None when `machine` asks for nothing (k = 1 and no
vcpus): the lab runs the settings as given. A value this machine cannot give raises SettingsError with
`machine_problems`' reason, before anything is made. The CPU shares themselves are the server CPU
condition's (cpu_emulation.CoreModel reads `machine` from the dilated settings it runs).
"""
from __future__ import annotations

import os

from ...config.dilation import Host, Plan, dilate
from ...config.settings import LabSettings
from .cpu_emulation import emulation
from .speed_meter import Meter, current


def asks(s: LabSettings) -> bool:
    return s.machine.dilation != 1 or s.machine.vcpus is not None


def host(s: LabSettings, meter: Meter | None = None) -> Host:
    """This machine for the plan: its cores and the model's speed ratio (1: the host's CPU or native speed), the
    ratio from `meter` (None: the open session's, labkit.lab.conditions.speed_meter.session, else measured now)."""
    emu = emulation(s, meter or current())
    return Host(os.cpu_count() or 1, emu.ratio if emu and emu.emulate else 1.0)


def scale_model(s: LabSettings, meter: Meter) -> Plan | None:
    """The plan the lab runs for `s` (None: nothing to dilate); SettingsError when this machine cannot."""
    return dilate(s, host(s, meter)) if asks(s) else None


class ScaleModel:
    """The scale model the lab was started with: `k`, the settings that run for the user's, and the plan's notes.
    machine.* is set when the lab starts (labkit.lab.changes refuses it live), so every later change of the user's
    settings runs dilated as the first were."""

    def __init__(self, s: LabSettings, meter: Meter):
        self.given, self.meter = s.machine, meter
        self.plan = scale_model(s, meter)                      # SettingsError here, before anything is made

    @property
    def k(self) -> float:
        """The time dilation (1: real time): rates measured are read back x k, times / k."""
        return self.plan.k if self.plan else 1.0

    def time(self, seconds: float) -> float:
        """A timeout or deadline of the lab's or a client's own (the pull deadline, an idle timeout), in the
        lab's time: the plan's x k (labkit.config.dilation.Plan.time), as given without a model."""
        return self.plan.time(seconds) if self.plan else seconds

    def changed(self) -> dict[str, list]:
        """The settings the plan changed, by name: [the user's, the one that runs]."""
        return {n: list(v) for n, v in self.plan.changed.items()} if self.plan else {}

    @property
    def notes(self) -> list[str]:
        return list(self.plan.notes) if self.plan else []

    def running(self, given: LabSettings) -> LabSettings:
        """What runs for the user's `given`: dilated as the lab's machine is (another machine.* is left as given:
        plan_changes refuses it, naming the setting)."""
        if given.machine != self.given or not asks(given):
            return given
        return dilate(given, host(given, self.meter)).settings
