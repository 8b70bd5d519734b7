"""labkit's own clients in a child process: their pulls held by the compute node's CPU group (time dilation).

labkit's own clients (kinds `labkit` and `oci`) pull in threads of the process that measures (labkit.clients.own). A time-dilated
lab (labkit.config.dilation) slows the clients' CPU by k too, with a CFS group per compute node; threads
of the measuring process cannot join that group alone (a cgroup v1 `cgroup.procs` write moves the whole
process, its samplers and the lab's supervision with it). So there the pulls run in a child process that
joins the node's groups before it execs (`Where.preexec`), with the same code and the same results:

    python -m labkit.clients.own_child      # a JSON spec on stdin; "first-byte" then "results <JSON>" on stdout

The child costs a Python start-up (~0.1-0.2 s of CPU) before its pulls; a pull's time starts in the child,
once its manifest is asked (as in-process), so the start-up is outside every rate.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict

from ..config.settings import ClientSettings
from ..errors import LabError
from ..records import PullResult, Verify
from .kind import OciImageRef, Target, Where
from .registry_api import Trust

FIRST = "first-byte"
RESULTS = "results "


def spec(t: Target, where: Where, settings: ClientSettings, parallel: int, verify: Verify, timeout: float,
         deadline: float) -> dict:
    """What the child is told (pure): the target (an OCI image's digests too), where it writes, the client's
    settings, the bounds."""
    return {"target": {**asdict(t), "trust": asdict(t.trust) if t.trust else None},
            "dest_root": str(where.dest_root) if where.dest_root else None, "keeps": where.keeps,
            "settings": settings.model_dump(mode="json"), "parallel": parallel, "verify": verify,
            "timeout": timeout, "deadline": deadline}


def from_spec(d: dict) -> tuple[Target, Where, ClientSettings]:
    from pathlib import Path
    td = dict(d["target"])
    td["trust"] = Trust(**td["trust"]) if td.get("trust") else None
    if td.get("oci"):
        oci = dict(td["oci"])
        td["oci"] = OciImageRef(**{**oci, "layers": tuple((digest, size) for digest, size in oci["layers"])})
    return (Target(**td), Where(Path(d["dest_root"]) if d["dest_root"] else None, keeps=d["keeps"]),
            ClientSettings.model_validate(d["settings"]))


def pull_in_child(t: Target, where: Where, settings: ClientSettings, parallel: int, verify: Verify, timeout: float,
                  deadline: float, first_byte: threading.Event | None = None) -> list[PullResult]:
    """The pulls in a child process started with `where.preexec` (it joins the node's groups first)."""
    from .program import with_labkit
    proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=where.preexec,
                            env=with_labkit(dict(os.environ)), start_new_session=True)
    proc.stdin.write(json.dumps(spec(t, where, settings, parallel, verify, timeout, deadline)))
    proc.stdin.close()
    results = None
    for line in proc.stdout:
        if line.strip() == FIRST and first_byte is not None:
            first_byte.set()
        elif line.startswith(RESULTS):
            results = [PullResult(**r) for r in json.loads(line[len(RESULTS):])]
    err = proc.stderr.read()
    proc.wait()
    if results is None:
        raise LabError(f"labkit's client in its child process ended with {proc.returncode}: {err.strip()[-500:]}")
    return results


def main() -> int:
    from .kinds import client_kind
    t, where, settings = from_spec(d := json.loads(sys.stdin.read()))
    first = threading.Event()

    def tell() -> None:
        if first.wait(d["deadline"]):
            print(FIRST, flush=True)
    threading.Thread(target=tell, daemon=True).start()
    results = client_kind(settings).pull(t, where, d["parallel"], d["verify"], d["timeout"], d["deadline"], first)
    print(RESULTS + json.dumps([asdict(r) for r in results]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
