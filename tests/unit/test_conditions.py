"""The Lab's conditions without a lab up: each is a Condition the Lab loops over, every live-change step
has one owner, and a loopback lab refuses what its conditions cannot do before anything starts."""
import pytest

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.config.settings import SettingsError
from labkit.lab.changes import STEP_ORDER, replanned
from labkit.lab.conditions.base import Condition, end_all
from labkit.lab.lab import Lab
from labkit.lab.programs import PROGRAMS


@pytest.fixture
def lab(tmp_path):
    return Lab("unit-cond", namespaced=False, data_dir=tmp_path)


def test_the_lab_is_its_conditions_and_each_step_has_one_owner(lab):
    assert all(isinstance(c, Condition) for c in lab.conditions)
    assert lab.conditions == (lab.links, lab.tls, lab.storage, lab.cpu, lab.client)
    owners = {step: [type(c).__name__ for c in lab.conditions if step in c.steps] for step in STEP_ORDER}
    for step, by in owners.items():
        assert len(by) + (step == "publish") + (step in PROGRAMS) == 1, (step, by)
    assert {c.disk_role for c in lab.conditions if c.disk_role} == {"vm", "compute"}
    assert lab.path is lab.plan.path and lab.services is lab.running.services


def test_a_loopback_lab_refuses_what_its_conditions_cannot_do(lab):
    with pytest.raises(SettingsError, match="storage.disk: 'loop' needs root") as exc:
        lab.check(SREGISTRY_SHIPPED.changed(storage={"disk": "loop"}, client={"dest": "local-disk"}))
    assert "client.dest: 'local-disk' needs root" in str(exc.value)
    assert lab.check(SREGISTRY_SHIPPED.changed(nginx={"worker_processes": 3})) == ["nginx"]


def test_tls_on_moves_the_published_port_and_off_moves_it_back(lab):
    on = SREGISTRY_SHIPPED.changed(tls={"enabled": True})
    assert replanned(lab.plan, SREGISTRY_SHIPPED) is None
    p = replanned(lab.plan, on)
    assert p.tls and p.path is lab.path and replanned(p, on) is None and not replanned(p, SREGISTRY_SHIPPED).tls


def test_ending_goes_on_past_a_condition_that_fails():
    ended = []

    class Ends(Condition):
        def __init__(self, name):
            self.name = name

        def down(self):
            if self.name == "b":
                raise OSError("stuck")
            ended.append(self.name)
            return [f"ended {self.name}"]

    assert end_all((Ends("a"), Ends("b"), Ends("c"))) == ["ended c", "FAILED: stuck", "ended a"]
    assert ended == ["c", "a"]
