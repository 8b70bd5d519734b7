"""The CPU ratio of a run is the one measured when its lab started (root; -s shows the numbers): a lab with
cpu.model opteron-6174 measures this machine on the model's code path as it starts, says how busy the machine
was, keeps the figure in its notes, its state and the survey it records; a notebook attaching reads it back."""
from __future__ import annotations

import time
from dataclasses import asdict

import pytest

from labkit.config import cpu_models
from labkit.config.presets import preset
from labkit.lab.conditions.speed_meter import AT_START, RECORDED
from labkit.lab.host import ownership
from labkit.lab.lab import Lab
from labkit.measure.survey import run_survey
from labkit.records.cpu_ratio import cpu_ratio
from labkit.units import MiB

pytestmark = pytest.mark.integration
NAME = "cpuratio"
OPTERON = preset("sregistry-2018-10-https").changed(cpu={"model": "opteron-6174"})


def test_a_lab_with_a_cpu_model_records_the_ratio_it_measured_at_its_start():
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    with Lab(f"{NAME}-it", OPTERON, image_size=16 * MiB, quiet=True) as lab:
        up_s = time.perf_counter() - t0
        emu = lab.cpu.emulation
        sp = emu.speed
        print(f"\nmeasured: lab up in {up_s:.1f} s; {sp.note()}; ratio {emu.ratio:.3f}")
        # fresh: measured by this lab, now, on the path its TLS settings negotiate, under the model's mask
        assert sp.source == AT_START and sp.when >= started
        assert (sp.path, sp.mask) == (emu.path, emu.mask) and len(sp.runs_mbps) == 3 and sp.mbps == max(sp.runs_mbps)
        published = cpu_models.model(emu.model).mbps(emu.path)
        assert emu.ratio == pytest.approx(cpu_models.ratio(sp.mbps, published), abs=1e-3)
        assert isinstance(sp.busy, bool) and sp.busy == (sp.others_cores > sp.busy_above_cores)
        assert sp.note() in lab.notes and any(n.startswith("cpu.model opteron-6174") for n in lab.notes)
        assert ownership.read(lab.name)["cpu_speed"] == [asdict(sp) | {"runs_mbps": list(sp.runs_mbps)}]
        # the run's record: the survey's meta carries the same figure, and reads back as the lab's
        survey = run_survey(lab, parallel=1, iperf_seconds=1, hops=[], vantages=["nginx (tls)"], repeats=1,
                            tcp=False, progress=False, verify="length")
        assert survey.meta["cpu_model"]["speed"]["mbps"] == sp.mbps and survey.meta["machine"]["ratio"] == emu.ratio
        assert cpu_ratio(survey) == cpu_ratio(lab) and cpu_ratio(lab)["busy"] == sp.busy
        print(f"measured: {cpu_ratio(survey)['text']}")
        # a notebook attaching to the running lab reads the figure recorded at its start: not measured again
        t1 = time.perf_counter()
        seen = Lab.attach(lab.name).cpu.emulation.speed
        assert seen.source == RECORDED and (seen.mbps, seen.when, seen.busy) == (sp.mbps, sp.when, sp.busy)
        print(f"measured: attach took {time.perf_counter() - t1:.1f} s")
