"""Vacuum sensitivity of a charged interface hop (V_Li^- with a compensating background).

Usage (DFT; about 4 min per single point of the 63-atom Li3P|LiCl cell on 2 ranks)::

    mpiexec -n 2 gpaw python -- docs/check_charged_cell.py RESULT.json WORKDIR [--vacuum 5]
        [--images 0,4,6,8] [--same 0]

A vacancy hop between two insulators is computed as a charged cell (GPAW ``charge=-1``) with
a uniform compensating background that fills the cell, vacuum included, and the dipole
correction of the slab. The background in the vacuum and the dipole of a charged slab (which
depends on where the charge sits along the normal) make energies depend on the vacuum, and
the hop moves the vacancy along the normal. This script recomputes single points of
``--images`` of a stored barrier document with the vacuum widened by ``--vacuum`` Angstrom
(atoms unchanged, same settings and calculator as the document), and ``--same`` in the
original cell (to check that a fresh SCF reproduces the stored energy). It prints and writes
``WORKDIR/check.json``: each image's energy relative to image 0 in both cells and the change.
Single points only: the geometries are not relaxed in the wider cell.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase.parallel import parprint, world

from interphase_dft.calc.factory import factory_for
from interphase_dft.calc.guard import GuardedCalculator
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.recipes.barrier import hop_options
from interphase_dft.schemas import doc_from_dict


def _energy(factory, atoms, label: str) -> float:
    """Energy with the package's guard (an unconverged SCF is retried with safer mixing)."""
    atoms = atoms.copy()
    atoms.calc = GuardedCalculator(factory, label=label)
    return float(atoms.get_potential_energy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result")
    ap.add_argument("workdir")
    ap.add_argument("--vacuum", type=float, default=5.0, help="Angstrom added along z")
    ap.add_argument("--images", default="0,4,6,8")
    ap.add_argument("--same", default="0", help="images recomputed in the original cell")
    args = ap.parse_args()
    doc = doc_from_dict(json.loads(Path(args.result).read_text()))
    settings = CalcSettings.model_validate(doc.settings)
    opts = hop_options(doc.phase_a, doc.phase_b, doc.mechanism)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    factory = factory_for(settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
                          txt=str(work / "gpaw.txt"), extra=dict(opts.calc_extra or {}),
                          li_inserted=opts.li_inserted)
    wanted = [int(i) for i in args.images.split(",")]
    same = [int(i) for i in args.same.split(",") if i != ""]
    out_path = work / "check.json"
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out.update({"result": Path(args.result).name, "vacuum_added_A": args.vacuum,
                "calculator": doc.calculator, "stored": {}, "wide": {}, "same": {}})
    for i in sorted(set(wanted) | {0}):
        out["stored"][str(i)] = doc.images[i].energy
    for i in sorted(set(wanted) | {0}):
        atoms = doc.images[i].structure.to_atoms()
        cell = atoms.cell.copy()
        cell[2] = cell[2] * (1 + args.vacuum / cell.lengths()[2])
        atoms.set_cell(cell, scale_atoms=False)
        key = f"wide-{args.vacuum:g}-img{i}"
        out["wide"][str(i)] = out.get("done", {}).get(key) or _energy(factory, atoms, key)
        out.setdefault("done", {})[key] = out["wide"][str(i)]
        parprint(f"image {i}: wide cell E = {out['wide'][str(i)]:.4f} eV")
        if world.rank == 0:
            out_path.write_text(json.dumps(out, indent=1))
    for i in same:
        key = f"same-img{i}"
        out["same"][str(i)] = out.get("done", {}).get(key) or _energy(
            factory, doc.images[i].structure.to_atoms(), key)
        out["done"][key] = out["same"][str(i)]
    e0s, e0w = out["stored"]["0"], out["wide"]["0"]
    out["relative"] = {
        str(i): {"stored": out["stored"][str(i)] - e0s, "wide": out["wide"][str(i)] - e0w,
                 "change": (out["wide"][str(i)] - e0w) - (out["stored"][str(i)] - e0s)}
        for i in wanted}
    for i, r in out["relative"].items():
        parprint(f"image {i}: E - E0 stored {r['stored']:+.4f}, wider vacuum {r['wide']:+.4f}, "
                 f"change {r['change']:+.4f} eV")
    for i, e in out["same"].items():
        parprint(f"image {i}: fresh SCF in the original cell {e:.4f} eV, stored "
                 f"{out['stored'][i]:.4f} eV, difference {e - out['stored'][i]:+.4f} eV")
    if world.rank == 0:
        out_path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
