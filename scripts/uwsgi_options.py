"""Write labkit/config/uwsgi-options.txt: every option the installed uwsgi accepts, from `uwsgi --help`.

    python scripts/uwsgi_options.py

`labkit import` refuses a uwsgi.ini key that is not among them (uwsgi itself would take it as a
placeholder and ignore it; only `--strict` refuses it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "labkit" / "config" / "uwsgi-options.txt"


def main() -> int:
    uwsgi = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
    version = subprocess.run([uwsgi, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run([uwsgi, "--help"], capture_output=True, text=True).stdout
    names = sorted({m.group(1) for m in re.finditer(r"^\s+(?:-\S\|)?--([a-z0-9][a-z0-9-]*)", text, re.M)})
    OUT.write_text(f"# every option of uwsgi {version} (`uwsgi --help`), one a line; scripts/uwsgi_options.py writes it\n"
                   + "\n".join(names) + "\n")
    print(f"{OUT}: {len(names)} options of uwsgi {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
