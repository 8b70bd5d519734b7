"""The delaying file system's process: `python -m labkit.lab.conditions.delayfs_cli SOURCE MOUNTPOINT --delay-ms N`
serves SOURCE at MOUNTPOINT until it is unmounted (labkit.lab.conditions.delayfs.DelayMount starts it)."""
from __future__ import annotations

import sys

import click

from ...units import MiB
from .delayfs import serve


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--delay-ms", type=click.FloatRange(0, 10_000), default=0.0, show_default=True,
              help="sleep before each read and write")
@click.option("--max-read", type=click.IntRange(4096), default=MiB, show_default=True, help="bytes per read request")
@click.option("--threads", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="requests served at once (libfuse 3.15 on)")
@click.option("--keep-cache", is_flag=True, help="the kernel keeps a file's pages over opens")
@click.option("--max-write", type=click.IntRange(0), default=0, show_default=True,
              help="bytes per write request (0: libfuse's default)")
@click.option("--write-rate", type=click.FloatRange(0), default=0, show_default=True,
              help="bytes/s all writes share (0: no limit)")
@click.option("--discard", is_flag=True, help="keep no written byte: each file's sha256 streamed, as an xattr")
def main(source, mountpoint, delay_ms, max_read, threads, keep_cache, max_write, write_rate, discard) -> None:
    """Serve SOURCE at MOUNTPOINT, each read and write delayed, until unmounted."""
    serve(source, mountpoint, delay_ms, max_read, threads, keep_cache, max_write, write_rate, discard)


if __name__ == "__main__":
    sys.exit(main())
