"""The report as a person sees it: rendered by headless Chromium at 1280 px width.

A copy of the report page gets a script that writes what the browser measured into the
``<body>`` (every image loaded; no table, cell or image wider than its box or the page);
``--dump-dom`` returns it. The campaign is the one of ``tests/test_report.py`` plus a hop
across a real LiAl|LiCl migration cell (its images carry the sides), and a bulk reference
hop; no DFT.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from interphase_dft.analysis.report import write_report
from tests.test_analysis_factories import campaign_docs, make_barrier_doc, make_binding_doc
from tests.test_report import CAMPAIGN, stored

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium; "
    "scripts/bootstrap.sh installs it)")

#: written into the test copy of the page only
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const page = document.documentElement.clientWidth;
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0));
  const over = [];
  document.querySelectorAll('table').forEach((t, k) => {
    const box = t.parentElement;
    const x = getComputedStyle(box).overflowX;
    if (!['auto', 'scroll'].includes(x) && t.scrollWidth > box.clientWidth + 1)
      over.push('table ' + k + ' wider than its box');
    if (box.getBoundingClientRect().right > page + 1)
      over.push('box of table ' + k + ' beyond the page');
  });
  document.querySelectorAll('td, th').forEach(c => {
    if (c.scrollWidth > c.clientWidth + 1) over.push('cell ' + c.textContent.slice(0, 40));
  });
  imgs.forEach(i => {
    const r = i.getBoundingClientRect();
    const limit = i.classList.contains('cell') ? 721 : 641;  // the page's max-height
    if (r.right > page + 1 || r.height > limit) over.push('image ' + i.getAttribute('src'));
  });
  if (document.documentElement.scrollWidth > page) over.push('page scrolls sideways');
  const d = document.body.dataset;
  d.nimages = String(imgs.length);
  d.imagesok = String(imgs.length > 0 && bad.length === 0);
  d.badimages = bad.map(i => i.getAttribute('src')).join(' ');
  d.overflow = over.join(' | ');
  d.height = String(document.documentElement.scrollHeight);
  d.checked = 'yes';
});
</script>
"""


def interface_hop(reaction: float = 0.1):
    """A LiAl|LiCl vacancy hop whose images are a real migration cell (sides recorded)."""
    from interphase_dft.builders.hops import vacancy_hop
    from interphase_dft.builders.migration import migration_cell
    from interphase_dft.builders.neb import interpolate_images
    from interphase_dft.schemas import NEBImageData, StructureData

    cell = migration_cell("LiAl", "LiCl", min_thickness=6.0, max_atoms=200,
                          miller_a=(1, 1, 0), miller_b=(1, 1, 0))
    hop = vacancy_hop(cell)
    doc = make_barrier_doc("LiAl", "LiCl", 0.42, reaction=reaction)
    band = interpolate_images(hop.initial, hop.final, len(doc.images) - 2, method="linear")
    return doc.model_copy(update={"images": [
        NEBImageData(energy=e, fmax=0.03, structure=StructureData.from_atoms(a))
        for a, e in zip(band, doc.energies, strict=True)]})


def campaign_report(outdir: Path) -> Path:
    """The report of the test campaign (``tests/test_report.py``) with LiCl's binding
    energy, a LiAl|LiCl hop on a real cell and the bulk LiAl reference hop (so the forward
    barrier and reaction energy fits have n >= 3); returns ``index.html``."""
    docs = [*campaign_docs(), make_binding_doc("LiCl", [-0.3]), interface_hop(reaction=0.2),
            make_barrier_doc("LiAl", "LiAl", 0.25, reaction=0.0, mechanism="bulk-vacancy")]
    return write_report(stored(docs), outdir, campaign=CAMPAIGN, n_boot=100)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throw-away profile."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--window-size={WIDTH},4000",
         "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000", *args],
        capture_output=True, text=True, timeout=180, check=False)


def screenshot(index: Path, png: Path) -> Path:
    """``png``: the page at 1280 x 4000 px."""
    res = chromium(f"--user-data-dir={png.parent / 'chromium-shot'}", f"--screenshot={png}",
                   index.as_uri())
    assert png.is_file(), res.stderr[-2000:]
    return png


def measured(index: Path) -> dict[str, str]:
    """What the check script wrote into ``<body>`` of a copy of ``index``."""
    page = index.with_name("browser-check.html")
    page.write_text(index.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    res = chromium(f"--user-data-dir={index.parent / 'chromium-dom'}", "--dump-dom",
                   page.as_uri())
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body, f"no <body> in the dumped DOM: {res.stderr[-2000:]}"
    return {k: v for k, v in re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1))}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in px from the PNG header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return campaign_report(tmp_path_factory.mktemp("browser") / "report")


def test_report_page_has_every_part(report: Path) -> None:
    html = report.read_text()
    for part in ("figures/descriptor_modes.png", "figures/fits.png",
                 "figures/neb_LiAl__LiCl_vacancy.png", "figures/cell_LiAl__LiCl_vacancy.png",
                 "figures/neb_LiAl__LiAl_bulk-vacancy.png", "Missing or not converged",
                 "Settings and provenance", "Package versions", "bulk LiAl hop"):
        assert part in html, part
    # a picture of every interface hop; the real cell is coloured by phase, the factory
    # cells (no sides recorded) by element, and the captions say which
    for hop in ("LiAl__LPSC_vacancy", "Al__Li2S_interstitial", "LiAl__Li2S_vacancy",
                "LiAl__LiCl_vacancy"):
        assert f'class="cell" src="figures/cell_{hop}.png"' in html
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert sum("Blue: LiAl atoms, orange: LiCl atoms" in c for c in captions) == 1
    assert sum("so atoms are coloured by element" in c for c in captions) == 3
    assert "cell_LiAl__LiAl" not in html  # a bulk hop is not an interface cell


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    got = measured(report)
    assert got.get("checked") == "yes", got
    assert got["imagesok"] == "true", f"images not loaded: {got['badimages']}"
    assert int(got["nimages"]) >= 12
    assert got["overflow"] == "", got["overflow"]
    png = screenshot(report, tmp_path / "report.png")
    assert png.stat().st_size > 50_000
    assert png_size(png) == (WIDTH, 4000)
