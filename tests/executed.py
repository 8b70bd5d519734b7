"""The notebooks as executed once, for the browser to show: nbval's run is recorded, not repeated.

nbval executes every notebook (`make test`, `--nbval-lax`) and keeps no outputs. The root conftest.py
wraps each nbval cell's reading of the kernel's messages, and here those messages become the cell's
outputs as a Jupyter frontend keeps them (display updates applied, widget models' state kept, as
nbclient does). When nbval has run a whole notebook, it is written to EXECUTED/<name>.ipynb, signed
(trusted: its scripts run when JupyterLab opens it). tests/integration/test_browser.py opens those; run
alone, it executes a missing one itself with nbclient (still one execution).
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import output_from_msg

ROOT = Path(__file__).parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "data" / "executed" / "notebooks"      # data/executed: gitignored
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class Recorder:
    """One notebook's outputs and widget state, rebuilt from the kernel's iopub messages."""

    def __init__(self, path: Path, nb=None):
        self.path = Path(path)
        self.nb = copy.deepcopy(nb) if nb is not None else nbformat.read(self.path, as_version=4)
        self.widgets: dict[str, dict] = {}
        self.cells_run = 0
        self.failed = False

    def cell_messages(self, index: int, msgs: list[dict]) -> None:
        """The messages that answered cell `index`'s execution, in order."""
        cell = self.nb.cells[index]
        outs, by_display = [], {}
        for m in msgs:
            kind, content = m["msg_type"], m["content"]
            if kind in ("display_data", "execute_result", "stream", "error"):
                out = output_from_msg(m)
                if kind == "stream" and outs and outs[-1].get("output_type") == "stream" \
                        and outs[-1].name == out.name:
                    outs[-1].text += out.text
                    continue
                outs.append(out)
                did = content.get("transient", {}).get("display_id")
                if did:
                    by_display.setdefault(did, []).append(out)
            elif kind == "update_display_data":
                for out in by_display.get(content.get("transient", {}).get("display_id"), []):
                    out.data, out.metadata = content["data"], content.get("metadata", {})
            elif kind == "clear_output":
                outs, by_display = [], {}
            elif kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                self._widget(content["comm_id"], content["data"], m.get("metadata", {}))
            elif kind == "comm_msg":
                data = content.get("data", {})
                if content["comm_id"] in self.widgets and data.get("method") == "update":
                    self.widgets[content["comm_id"]]["state"].update(data.get("state", {}))
            # a closed model keeps its last state: a view of it saved in an output still draws (as it was)
        self.cells_run += 1
        # nbval runs cells without history (every count 0): number them as a person's Run All does
        cell.outputs, cell.execution_count = outs, self.cells_run
        for out in outs:
            if out.output_type == "execute_result":
                out.execution_count = self.cells_run

    def _widget(self, comm_id: str, data: dict, metadata: dict) -> None:
        state = dict(data.get("state", {}))
        self.widgets[comm_id] = {"model_name": state.get("_model_name"), "model_module": state.get("_model_module"),
                                 "model_module_version": state.get("_model_module_version"), "state": state}

    def notebook(self):
        nb = copy.deepcopy(self.nb)
        if self.widgets:
            nb.metadata.setdefault("widgets", {})[WIDGET_STATE] = {
                "version_major": 2, "version_minor": 0, "state": copy.deepcopy(self.widgets)}
        return nb

    def save(self, out_dir: Path = EXECUTED) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / self.path.name
        nbformat.write(self.notebook(), out)
        sign(out)
        return out


def sign(path: Path) -> None:
    """Trust the notebook (its outputs' scripts run in JupyterLab), in this user's notary: the one
    JupyterLab started by this user reads."""
    from nbformat.sign import NotebookNotary
    nb = nbformat.read(path, as_version=4)
    NotebookNotary().sign(nb)


def execute(name: str, out_dir: Path = EXECUTED, timeout: int = 900) -> Path:
    """Execute notebooks/<name> once with nbclient (widget state kept) and save it signed."""
    from nbclient import NotebookClient
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
                   store_widget_state=True).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / name)
    sign(out_dir / name)
    return out_dir / name
