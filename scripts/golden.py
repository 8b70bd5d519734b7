"""Rewrite tests/golden/ from the templates (after an intended change to a template or preset)."""
from pathlib import Path

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI
from labkit.config.render import render_nginx, render_nginx_server, render_uwsgi
from labkit.config.presets import PRESETS

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def rendered() -> dict[str, str]:
    out = {}
    for name, s in PRESETS.items():
        out[f"{name}.nginx.conf"] = render_nginx(s, DEPLOY_NGINX)
        out[f"{name}.server.conf"] = render_nginx_server(s, DEPLOY_NGINX)
        out[f"{name}.uwsgi.ini"] = render_uwsgi(s, DEPLOY_UWSGI)
    return out


if __name__ == "__main__":
    for name, text in rendered().items():
        (GOLDEN / name).write_text(text)
        print("wrote", GOLDEN / name)
