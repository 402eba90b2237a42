"""Validation run: Li vacancy hop in Li2S (charged vacancy), laptop DFT settings, full DFT.

Usage: .venv/bin/python docs/validation_li2s.py [WORKDIR] [PRESET] [KEY=VALUE ...]
(overrides as for ``interphase-dft binding --set``, e.g. ``dft.kpt_density=1.0``)
Writes WORKDIR/li2s_vacancy_hop.json (the BarrierDoc) and prints the summary.
Literature: 0.27 eV (Moradabadi & Kaghazchi, APL 108, 213906 (2016), PBE, charged vacancy).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from interphase_dft.build.neb import vacancy_hop_endpoints
from interphase_dft.calc.settings import FULL_DFT_OVERRIDES, preset
from interphase_dft.commands.calc import format_barrier
from interphase_dft.recipes.barrier import neb_barrier


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/validation-li2s")
    from interphase_dft.commands.calc import parse_overrides

    # full DFT (DFT-relaxed endpoints, DFT CI-NEB) whatever the preset's own level
    settings = preset(sys.argv[2] if len(sys.argv) > 2 else "laptop",
                      FULL_DFT_OVERRIDES).with_overrides(parse_overrides(sys.argv[3:]))
    # antifluorite: S on the fcc (Ca) site, Li on the tetrahedral (F) sites; a = 5.69 A (exp.)
    cell = bulk("SLi2", "fluorite", a=5.69) * (2, 2, 2)  # 24 atoms, 8.05 A periodicity
    li = [a.index for a in cell if a.symbol == "Li"]
    j = li[0]
    d = cell.get_distances(j, li, mic=True)
    i = li[int(np.argsort(d)[1])]  # nearest Li neighbour (a/2 = 2.845 A)
    initial, final = vacancy_hop_endpoints(cell, i, j)
    t0 = time.perf_counter()
    doc = neb_barrier(initial, final, settings, workdir, label="Li2S vacancy hop",
                      is_metal=False, phase_a="Li2S", phase_b="Li2S",
                      interface_meta={"system": "Li2S 2x2x2 primitive, V_Li^-1 hop",
                                      "hop_distance_A": initial.info.get("hop_distance_A")},
                      calc_extra={"charge": -1})
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "li2s_vacancy_hop.json").write_text(doc.model_dump_json(indent=1))
    print(format_barrier(doc))
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
