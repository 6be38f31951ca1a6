"""report.html in a real browser: headless Chromium (Debian's package) reads the page's text
(--dump-dom) and takes a screenshot whose pixels show the status colours."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from dindkit import report as r

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="chromium is missing (scripts/install-host-packages installs it)"
)
# The badges' colours in templates/report/report.html.j2.
GREEN, RED, GREY = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E), (0x6E, 0x77, 0x81)
SIZE = (1200, 900)


def sample_report() -> r.Report:
    return r.Report(
        {
            "lab-demo-bookworm": r.HostResult(
                {
                    "dood": r.ModeResult(
                        "passed",
                        "8 checks passed",
                        66.6,
                        [r.Check("socket-group", "passed", "root:docker 660")],
                        grants="Root on the host through its socket",
                    ),
                    "dind": r.ModeResult(
                        "failed",
                        "inner-build: no space left on device",
                        101.0,
                        [
                            r.Check("ready", "passed", "inner dockerd answered after 7 s"),
                            r.Check("inner-build", "failed", "step 1/2\nno space left on device"),
                            r.Check("inner-run", "skipped"),
                        ],
                    ),
                    "sysbox": r.ModeResult("skipped", "sysbox-runc is not registered", 2.5),
                }
            )
        }
    )


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytes(stride)
    pixels: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 2:  # up: the most common filter, done in one pass
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind:
            unfilter(kind, line, previous, channels)
        pixels += zip(line[0::channels], line[1::channels], line[2::channels], strict=True)
        previous = bytes(line)
    return width, height, pixels


def unfilter(kind: int, line: bytearray, previous: bytes, channels: int) -> None:
    """PNG filters 1 (sub), 3 (average) and 4 (Paeth), in place."""
    for i in range(len(line)):
        left = line[i - channels] if i >= channels else 0
        up = previous[i]
        up_left = previous[i - channels] if i >= channels else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        else:
            guess = left + up - up_left
            near = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - up_left), 2))
            line[i] = (line[i] + (left, up, up_left)[near[1]]) & 0xFF


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    r.write_report(folder, sample_report())
    return folder / r.REPORT_HTML


def test_chromium_reads_hosts_modes_statuses_and_details(page: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    for text in (
        "lab-demo-bookworm",
        "dood",
        "dind",
        "sysbox",
        "PASSED",
        "FAILED",
        "SKIPPED",
        "66.6 s",
        "inner-build: no space left on device",
        "sysbox-runc is not registered",
        "Root on the host through its socket",
        "inner dockerd answered after 7 s",
        "1 passed, 1 failed, 1 skipped (1 host(s))",
    ):
        assert text in dom, text
    # The failed check's detail is open; the others one click away, in <details>.
    assert '<details open=""><summary><span class="badge failed">FAILED</span> inner-build' in dom
    assert dom.count("<details") == 3 and "<script" not in dom


def test_chromium_screenshot_shows_the_status_colours(page: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    chromium(
        tmp_path, f"--screenshot={screenshot}", f"--window-size={SIZE[0]},{SIZE[1]}", page.as_uri()
    )
    width, height, pixels = png_pixels(screenshot)
    assert (width, height) == SIZE
    for name, colour in (("green", GREEN), ("red", RED), ("grey", GREY)):
        # Each status badge is a block of about 60 x 18 pixels; the page has several of each.
        assert pixels.count(colour) > 1000, f"no {name} badge in {screenshot}"
