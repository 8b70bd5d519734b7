"""Keep in notebooks/ only the outputs nbval compares (cells marked NBVAL_CHECK_OUTPUT).

Run after executing the notebooks to refresh those outputs:
    python scripts/strip_notebooks.py notebooks/*.ipynb
"""
import sys

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"

for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)   # saved widget state: large, and rebuilt on every run
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if not cell.source.startswith(MARK):
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)
    print("stripped", path)
