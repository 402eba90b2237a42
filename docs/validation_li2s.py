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

from interphase_dft.builders.neb import li2s_vacancy_hop
from interphase_dft.calc.presets import FULL_DFT_OVERRIDES, preset
from interphase_dft.commands.calc import format_barrier
from interphase_dft.recipes.barrier import HopOptions, neb_barrier


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/validation-li2s")
    from interphase_dft.commands.calc import parse_overrides

    # full DFT (DFT-relaxed endpoints, DFT CI-NEB) whatever the preset's own level
    settings = preset(sys.argv[2] if len(sys.argv) > 2 else "laptop",
                      FULL_DFT_OVERRIDES).with_overrides(parse_overrides(sys.argv[3:]))
    initial, final, meta = li2s_vacancy_hop()
    t0 = time.perf_counter()
    doc = neb_barrier(initial, final, settings, workdir,
                      HopOptions(is_metal=False, calc_extra={"charge": meta["charge"]}),
                      label="Li2S vacancy hop", phase_a="Li2S", phase_b="Li2S",
                      mechanism="bulk-vacancy",
                      interface_meta=meta)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "li2s_vacancy_hop.json").write_text(doc.model_dump_json(indent=1))
    print(format_barrier(doc))
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
