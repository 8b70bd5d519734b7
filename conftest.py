"""nbval's one execution of each notebook, recorded for the browser test (tests/executed.py), and the
browser test ordered after the notebooks when both run in one session (`make test`)."""
import pytest


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not _is_nbval_cell(item):
        yield
        return
    from tests.executed import Recorder
    nbfile = item.parent
    rec = getattr(nbfile, "_lk_recorder", None)
    if rec is None:
        rec = nbfile._lk_recorder = Recorder(nbfile.fspath, nbfile.nb)
    kernel, msgs, ids = nbfile.kernel, [], []
    execute, get = kernel.execute_cell_input, nbfile.get_kernel_message

    def execute_recorded(*a, **kw):
        ids.append(execute(*a, **kw))
        return ids[-1]

    def get_recorded(*a, **kw):
        m = get(*a, **kw)
        if ids and m["parent_header"].get("msg_id") == ids[-1]:
            msgs.append(m)
        return m

    kernel.execute_cell_input, nbfile.get_kernel_message = execute_recorded, get_recorded
    try:
        yield
    finally:
        del kernel.execute_cell_input, nbfile.get_kernel_message       # back to the class's methods
        cells = nbfile.nb.cells
        index = next(i for i, c in enumerate(cells) if c is item.cell)
        rec.cell_messages(index, msgs)
        last = max(i for i, c in enumerate(cells) if c.cell_type == "code")
        if index == last:
            rec.save()


def pytest_collection_modifyitems(config, items):
    """Tests marked `after_notebooks` (the browser over the executed notebooks) run after nbval's cells."""
    later = [i for i in items if i.get_closest_marker("after_notebooks")]
    items[:] = [i for i in items if i not in later] + later
