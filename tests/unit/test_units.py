"""labkit.units: sizes as a person gives them."""
import pytest
from pydantic import BaseModel

from labkit.units import GiB, KiB, MiB, SizeBytes, SizeError, format_size, parse_size


@pytest.mark.parametrize("given, expected", [
    (64, 64 * MiB), ("64", 64 * MiB), ("64MiB", 64 * MiB), ("64 mib", 64 * MiB), ("1.5GiB", 3 * GiB // 2),
    ("512KiB", 512 * KiB), ("4096B", 4096), ("3GB", 3 * 10**9), (0.5, MiB // 2)])
def test_parse(given, expected):
    assert parse_size(given) == expected


@pytest.mark.parametrize("bad", ["x", "64XB", "-1", True, "1.3B", ""])
def test_bad_sizes_are_refused_with_the_value(bad):
    with pytest.raises(SizeError, match="size|unit|bytes"):
        parse_size(bad)


@pytest.mark.parametrize("n, text", [(1536 * MiB, "1.5 GiB"), (64 * MiB, "64 MiB"), (100, "100 B"), (2 * KiB, "2 KiB")])
def test_format(n, text):
    assert format_size(n) == text


def test_a_settings_field_takes_a_size():
    class M(BaseModel):
        size: SizeBytes
    assert M(size="1.5GiB").size == 3 * GiB // 2
    assert M(size=8).size == 8 * MiB
