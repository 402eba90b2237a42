"""Li chemical-potential references: the isolated Li atom and bcc Li, same settings as the hosts.

* ``li_atom``: one spin-polarised Li atom (Hund's rule moment 1 mu_B) in a cubic periodic box of
  edge ``settings.dft.atom_box`` Angstrom, Gamma point only, symmetry off, placed slightly off
  the box centre, insulator smearing.
* ``li_bcc_per_atom``: the one-atom primitive bcc cell (a from :mod:`interphase_dft.phases`,
  relaxed with the cell when ``settings.relax.relax_cell_bulk``), metal smearing, k-points from
  ``settings.dft.kpt_density``.

Both are cached in ``workdir/li_references-<hash>.json``, keyed by the DFT (and relax) settings and
the dispersion applied, so repeated calls cost nothing. The references get DFT-D3 exactly when
the host does (:func:`interphase_dft.calc.dispersion.dispersion_applied`), so E_b never mixes
corrected and uncorrected energies.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from interphase_dft.calc.checkpoint import info, read_json, write_json
from interphase_dft.calc.dispersion import dispersion_applied
from interphase_dft.calc.factory import factory_for
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.schemas import ReferenceEnergies, settings_hash

log = logging.getLogger("interphase_dft.recipes")

#: off-centre shift of the isolated atom, Angstrom (breaks accidental grid symmetry)
ATOM_OFFSET = (0.11, 0.07, 0.03)
#: bcc Li lattice constant used when phases.py does not provide one, Angstrom (exp. 3.51 at RT)
LI_BCC_A = 3.44


def li_atom_box(box: float) -> Atoms:
    """One Li atom, slightly off the centre of a periodic cubic box of edge ``box`` Angstrom."""
    centre = [box / 2 + d for d in ATOM_OFFSET]
    atoms = Atoms("Li", positions=[centre], cell=[box, box, box], pbc=True)
    atoms.set_initial_magnetic_moments([1.0])
    return atoms


def li_bcc() -> Atoms:
    """Primitive one-atom bcc Li with the lattice constant of the phase library."""
    a = LI_BCC_A
    try:
        from interphase_dft.phases import phase_info

        a = float(phase_info("Li").lattice[0])
    except Exception:  # phase library not available: use the stated default
        pass
    return bulk("Li", "bcc", a=a)


def references_key(settings: CalcSettings, dispersion: bool) -> str:
    """Cache key: hash of everything that changes the reference energies."""
    payload = {
        "dft": settings.dft.model_dump(),
        "relax": settings.relax.model_dump() if settings.relax.relax_cell_bulk else None,
        "dispersion": dispersion_applied(settings, dispersion),
        "engine": settings.engine,
        "ml": settings.ml.model_dump() if settings.engine == "ml" else None,
    }
    return settings_hash(payload)[:16]


def li_references(settings: CalcSettings, workdir: Path | str, *,
                  dispersion: bool = False) -> ReferenceEnergies:
    """Compute (or read from the cache) both Li references with ``settings``.

    Parameters
    ----------
    settings
        Same settings as the host calculations.
    workdir
        Directory for the cache file and the checkpoints of the two calculations.
    dispersion
        Apply DFT-D3 (when ``settings.dft.dispersion == 'd3'``), as for the host.

    Returns
    -------
    ReferenceEnergies
        ``li_atom`` and ``li_bcc_per_atom`` in eV; ``cohesive_energy`` = their difference.
    """
    workdir = Path(workdir)
    key = references_key(settings, dispersion)
    cache = workdir / f"li_references-{key}.json"
    stored = read_json(cache)
    if stored is not None:
        return ReferenceEnergies.model_validate(stored["references"])
    sub = workdir / f"li_references-{key}"
    atom_factory = factory_for(
        settings, is_metal=False, moving=False, spin=True, dispersion=dispersion,
        txt=str(sub / "li_atom.txt"),
        extra={"hund": True, "symmetry": "off", "kpts": {"size": (1, 1, 1), "gamma": True}},
    )
    e_atom = static(li_atom_box(settings.dft.atom_box), atom_factory, sub, label="li_atom").energy
    bcc = li_bcc()
    bcc_factory = factory_for(settings, is_metal=True, moving=settings.relax.relax_cell_bulk,
                              dispersion=dispersion, txt=str(sub / "li_bcc.txt"))
    if settings.relax.relax_cell_bulk:
        res = relax(bcc, bcc_factory, sub, settings.relax, cell=True, label="li_bcc")
    else:
        res = static(bcc, bcc_factory, sub, label="li_bcc")
    e_bcc = res.energy / len(bcc)
    refs = ReferenceEnergies(li_atom=e_atom, li_bcc_per_atom=e_bcc,
                             cohesive_energy=e_atom - e_bcc)
    write_json(cache, {
        "references": refs.model_dump(), "key": key,
        "dispersion": dispersion_applied(settings, dispersion),
        "li_bcc_cell": res.atoms.cell[:].tolist(), "atom_box": settings.dft.atom_box,
    })
    info(log, "Li references: atom %.4f eV, bcc %.4f eV/atom, cohesive %.3f eV", e_atom, e_bcc,
             refs.cohesive_energy)
    return refs
