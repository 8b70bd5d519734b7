"""The OCI hypotheses on a real distribution lab (labkit run oci-hypotheses, two of them): proxy_read_timeout
at 1 s against a registry whose disk gives 2 MB/s cuts its pulls (nginx: "upstream timed out") while 900 s
passes them, every layer verified; and a blob over proxy_max_temp_file_size does not fail through nginx 1.22.1
(it pauses the registry at the cap: src/event/ngx_event_pipe.c at release-1.22.1)."""
import pytest

from labkit.experiments.oci_hypotheses import run_oci_hypotheses
from tests.integration.labs import left_behind, needs_namespaces

pytestmark = pytest.mark.integration
NAME = "oci07-hyp"
TIMEOUT, CAP = "proxy_read_timeout on big blobs", "the 1 GiB proxy_max_temp_file_size cap"


@pytest.fixture(scope="module")
def result():
    needs_namespaces()
    out = run_oci_hypotheses(parallels=(1, 2), repeats=1, image_mib=16, hypotheses=[TIMEOUT, CAP], progress=False,
                             lab_name=NAME)
    assert not left_behind(NAME)
    return out


def test_a_read_timeout_shorter_than_the_registrys_storage_waits_cuts_pulls(result):
    runs, judged = result["runs"], result["judged"]
    mine = runs[runs.hypothesis == TIMEOUT]
    assert (mine[mine.variant == "as is"].failures > 0).all(), mine
    assert (mine[mine.variant == "fixed"].failures == 0).all() and (mine[mine.variant == "fixed"].MBps > 0).all()
    assert judged[judged.hypothesis == TIMEOUT].binds.all()


def test_a_blob_over_the_temp_file_cap_is_delivered_whole(result):
    runs = result["runs"]
    mine = runs[runs.hypothesis == CAP]
    assert len(mine) == 4 and (mine.failures == 0).all() and (mine.MBps > 0).all(), mine
