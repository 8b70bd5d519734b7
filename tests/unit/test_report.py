"""The HTML report: it opens with the verdict and a before → after headline; grouped bars in numeric order."""
import pandas as pd

from labkit.present.plots import compare_bars, natural
from labkit.present.report import Section, trials_headline, write_report


def trials():
    rows = []
    for preset, single, par in (("sregistry-2018-10", [195, 240, 230], 23), ("recommended", [686, 717, 720], 0)):
        for n, mbps in zip((1, 40, 5), single):
            rows.append({"preset": preset, "label": preset, "parallel": n, "single_MBps": mbps, "parallel_MBps": mbps,
                         "failures": par if n == 40 else 0})
    return pd.DataFrame(rows)


def test_parallel_counts_sort_as_numbers():
    assert sorted(["40 parallel", "1 parallel", "5 parallel"], key=natural) == ["1 parallel", "5 parallel", "40 parallel"]
    t = trials()
    fig = compare_bars(t.assign(run=t.parallel.astype(str) + " parallel"), x="label", y="parallel_MBps", group="run")
    assert [item.label["value"] for item in fig.legend[0].items] == ["1 parallel", "5 parallel", "40 parallel"]


def test_headline_says_before_and_after_per_parallel_count():
    h = trials_headline(trials())
    assert h.splitlines() == ["sregistry-2018-10 → recommended, the client's pulls, all together "
                              "(each ratio: recommended ÷ sregistry-2018-10):", "1 pull at once: 195 → 686 MB/s (3.5x)",
                              "5 pulls at once: 230 → 720 MB/s (3.1x)",
                              "40 pulls at once: 240 → 717 MB/s (3.0x), failed pulls 23 → 0"]


def test_the_report_opens_with_the_lead(tmp_path):
    path = write_report(tmp_path / "r.html", [Section("Per hop", "text")], lead=["nginx binds: nginx's CPU", "a → b"])
    html = path.read_text()
    assert html.index("nginx binds: nginx&#39;s CPU") < html.index("a → b") < html.index("<h2>Per hop</h2>")
