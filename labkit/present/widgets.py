"""The tuning panel: settings grouped by hop, a preset picker, "apply and measure", a growing table and chart.

    panel = TuningPanel(lab, measure); panel      # measure(settings, label, parallel) -> one trial's row

The panel runs nothing itself: `measure` is handed in (labkit.experiments.tuning.TuningPanel hands it
labkit.measure.sweep.trial on the lab, and is the one a notebook uses as lk.TuningPanel).
"""
from __future__ import annotations

import typing
from typing import Callable

import ipywidgets as w
import pandas as pd
from bokeh.embed import file_html
from bokeh.resources import INLINE
from IPython.display import HTML, display

from .plots import trials_bars
from ..config.presets import PRESETS
from ..config.settings import BufferSpec, LabSettings, SettingsError, as_text, parse_settings, setting

GROUP_TITLES = {"app": "registry app", "uwsgi": "uwsgi", "registry": "registry (distribution)", "nginx": "nginx",
                "publish": "publish (VM)", "kernel": "kernel TCP", "links": "links (tbf)", "storage": "VM disk",
                "cpu": "CPU", "client": "client"}
# the groups of the other registry's programs are not on the lab's path: no controls for them
NOT_ON_PATH = {"sregistry": ("registry",), "distribution": ("app", "uwsgi")}


def panel_groups(s: LabSettings) -> list[str]:
    """The setting groups the panel shows for a lab with settings `s` (its registry's own, not the other's)."""
    return [g for g in GROUP_TITLES if g not in NOT_ON_PATH[s.registry.kind]]
_STYLE = {"description_width": "190px"}
_LAYOUT = w.Layout(width="420px")


def _choices(annotation) -> list | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return None


def _control(name: str, annotation, value) -> w.Widget:
    if isinstance(value, bool):
        return w.Checkbox(value=value, description=name, style=_STYLE, indent=False)
    if (choices := _choices(annotation)) is not None:
        return w.Dropdown(options=choices, value=value, description=name, style=_STYLE, layout=_LAYOUT)
    return w.Text(value=as_text(value), description=name, style=_STYLE, layout=_LAYOUT,
                  placeholder="(default)" if value is None else "")


def _value(text: str, current):
    """A Text control's string back into the shape its setting takes (validation is the model's)."""
    text = text.strip()
    if text == "":
        return None
    if isinstance(current, BufferSpec):
        parts = text.split()
        return {"number": parts[0], "size": parts[1] if len(parts) > 1 else ""}
    if isinstance(current, tuple) or (current is None and len(text.split()) == 3):
        return [p for p in text.split()]
    if isinstance(current, str):       # a size or a word stays text ("0" for client_max_body_size)
        return text
    return int(text) if text.lstrip("-").isdigit() else text


class TuningPanel:
    """Controls for every setting of a running lab (its `settings`, `plan.path`, `check(settings)`); each "apply
    and measure" is one `measure(settings, label, parallel)`, a row of the table."""

    def __init__(self, lab, measure: Callable[[LabSettings, str, int], dict], parallel: int = 5):
        self.lab = lab
        self.measure = measure
        self.table = pd.DataFrame()
        self._controls: dict[tuple[str, str], w.Widget] = {}
        pages = []
        keyed = lab.path.keyed_settings       # links and CPU: one control per name of the lab's path
        groups = panel_groups(lab.settings)
        for group in groups:
            model = getattr(lab.settings, group)
            rows = []
            fields = ({f: None for f in keyed[group]} if group in keyed
                      else {f: info.annotation for f, info in type(model).model_fields.items()})
            for field, annotation in fields.items():
                ctl = _control(field, annotation, setting(lab.settings, group, field))
                self._controls[(group, field)] = ctl
                rows.append(ctl)
            pages.append(w.VBox(rows))
        self.tabs = w.Tab(children=pages, titles=[GROUP_TITLES[g] for g in groups])
        self.preset = w.Dropdown(options=["(current)", *PRESETS], description="preset", style=_STYLE)
        self.preset.observe(self._on_preset, names="value")
        self.parallel = w.IntSlider(value=parallel, min=1, max=40, description="parallel pulls", style=_STYLE)
        self.label = w.Text(description="label", placeholder="(describe this trial)", style=_STYLE)
        self.button = w.Button(description="apply and measure", button_style="primary", icon="play",
                               layout=w.Layout(width="190px"))
        self.button.on_click(lambda _: self.apply_and_measure())
        self.progress = w.IntProgress(value=0, min=0, max=3, description="idle", style=_STYLE)
        self.error = w.HTML()
        self.last_error = ""          # the refusal as plain text ("" after a good trial)
        self.out = w.Output()
        self.widget = w.VBox([w.HBox([self.preset, self.parallel]), self.tabs,
                              w.HBox([self.label, self.button, self.progress]), self.error, self.out])

    def _ipython_display_(self):
        display(self.widget)

    def _on_preset(self, change) -> None:
        if change["new"] in PRESETS:
            self.set_controls(PRESETS[change["new"]])

    def set(self, dotted: str, value) -> None:
        """Set one control as an operator would type it: `panel.set("nginx.uwsgi_buffer_size", "64k")`."""
        key = tuple(dotted.split(".", 1))
        if key not in self._controls:
            raise SettingsError(f"{dotted!r} is not a setting of this panel; use group.field, e.g. nginx.sendfile")
        self._controls[key].value = value

    def set_controls(self, s: LabSettings) -> None:
        for (group, field), ctl in self._controls.items():
            v = setting(s, group, field)
            ctl.value = v if isinstance(ctl, (w.Checkbox, w.Dropdown)) else as_text(v)

    def settings(self) -> LabSettings:
        """The controls as validated settings (SettingsError names what is wrong)."""
        data = self.lab.settings.model_dump()
        for (group, field), ctl in self._controls.items():
            current = setting(self.lab.settings, group, field)
            try:
                data[group][field] = ctl.value if not isinstance(ctl, w.Text) else _value(ctl.value, current)
            except (ValueError, IndexError) as exc:
                raise SettingsError(f"{group}.{field}: cannot read {ctl.value!r} ({exc})") from None
        return parse_settings(data)

    def apply_and_measure(self) -> dict | None:
        self.error.value = self.last_error = ""
        self.button.disabled = True
        try:
            self.progress.value, self.progress.description = 1, "checking"
            s = self.settings()
            self.lab.check(s)                  # refused here: nothing applied, the lab as it was
            self.progress.value, self.progress.description = 2, "measuring"
            label = self.label.value or f"trial {len(self.table) + 1}"
            row = self.measure(s, label, self.parallel.value)
            self.table = pd.concat([self.table, pd.DataFrame([row])], ignore_index=True)
            self.progress.value, self.progress.description = 3, "done"
            self._redraw()
            return row
        except SettingsError as exc:
            self.last_error = str(exc)
            self.error.value = f"<b style='color:#b00'>refused, nothing applied:</b> {_escape(self.last_error)}"
            self.progress.value, self.progress.description = 0, "refused"
            return None
        finally:
            self.button.disabled = False

    def _redraw(self) -> None:
        cols = ["label", "single_MBps", "parallel", "parallel_MBps", "per_pull_min", "failures", "busiest",
                "busiest_cpu", "trial_s"]
        fig = trials_bars(self.table, title="apply and measure: trials")
        # set the outputs directly (no `with out:` capture, whose message routing can
        # stall notebook runners such as nbclient/nbval until their timeout)
        self.out.outputs = ()
        self.out.append_display_data(self.table[cols])
        self.out.append_display_data(HTML(file_html(fig, INLINE, "trials")))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
