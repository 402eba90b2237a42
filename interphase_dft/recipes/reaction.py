"""Did the inserted Li react with its host?  Bond check, Li charge and moment of one site.

When Li reduces its host (P4S10 cages open easily), E(host + Li) - E(host) - E_ref is a
reaction energy, not a binding energy. :func:`reaction_check` compares the relaxed host + Li
with the relaxed clean host (same atom order, the Li last) by this rule
(:data:`REACTION_RULE`):

* host bonds are covalent pairs of host atoms, at least one of them a non-metal and neither
  an alkali metal (the host's own Li is ionic; Al-Al in Al and LiAl is metallic and not
  followed), closer than ``BOND_FACTOR`` x (sum of ASE covalent radii) in the clean host
  (P-S 2.09 A and 1.91 A are bonds, S...S 3.4 A between P4S10 cages is not);
* a host bond is **broken** when its length after relaxation exceeds ``STRETCH`` (1.2) x its
  clean length, or the per-pair cutoff :data:`BREAK_CUTOFFS` (P-S 2.4 A);
* the **coordination** of a host atom (its number of host bonds under the same rule) changes:
  a bond broke or a new one formed (e.g. S-S or P-P after a reduction);
* either makes the site ``reactive``.

:func:`check_site` is the hook the binding recipe calls once per relaxed site: it adds the
check, the Li Hirshfeld charge (:func:`interphase_dft.calc.charges.li_charge`, one extra SCF
at the relaxed geometry, GPAW only) and the Li magnetic moment (GPAW's moment in the Li
augmentation sphere, ``magmoms`` of the relaxation's last step) to the ``SiteResult``.
Lengths in Angstrom, charges in e, moments in mu_B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from interphase_dft.geometry import mic_vectors
from interphase_dft.schemas import SiteResult

BOND_FACTOR = 1.15
STRETCH = 1.2
BREAK_CUTOFFS: dict[frozenset[str], float] = {frozenset(("P", "S")): 2.4}
_IONIC = {3, 11, 19, 37, 55}  # alkali metals: never host bonds
#: non-metals (H, B, C, N, O, F, Si, P, S, Cl, As, Se, Br, Te, I): a host bond has one
_NONMETALS = {1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 52, 53}
REACTION_RULE = (
    f"host bonds: pairs of host atoms, one a non-metal, no alkali metal, closer than "
    f"{BOND_FACTOR} x the sum of "
    f"covalent radii in the clean host; reactive when a host bond stretches beyond "
    f"{STRETCH} x its clean length or beyond "
    + ", ".join(f"{'-'.join(sorted(k))} {v} A" for k, v in BREAK_CUTOFFS.items())
    + ", or a host atom's number of host bonds changes"
)


@dataclass
class ReactionCheck:
    """Outcome of :func:`reaction_check` (lengths in Angstrom)."""

    reactive: bool
    broken: list[str] = field(default_factory=list)
    coordination_changes: list[str] = field(default_factory=list)
    rule: str = REACTION_RULE

    @property
    def note(self) -> str:
        """What changed, or '' for an intact host."""
        parts = []
        if self.broken:
            parts.append("broken: " + "; ".join(self.broken))
        if self.coordination_changes:
            parts.append("coordination: " + "; ".join(self.coordination_changes))
        return " | ".join(parts)


def _bond_cutoff(z1: int, z2: int) -> float:
    return BOND_FACTOR * float(covalent_radii[z1] + covalent_radii[z2])


def _may_bond(z1: int, z2: int) -> bool:
    return z1 not in _IONIC and z2 not in _IONIC and (z1 in _NONMETALS or z2 in _NONMETALS)


def host_bonds(atoms: Atoms, n_host: int) -> list[tuple[int, int, tuple[int, int, int], float]]:
    """Host bonds (i < j or a periodic image, shift, length) among the first ``n_host`` atoms."""
    from ase.neighborlist import neighbor_list

    host = atoms[:n_host]
    z = host.numbers
    zmax = max((int(v) for v in z if int(v) not in _IONIC), default=1)
    i, j, d, shift = neighbor_list("ijdS", host, _bond_cutoff(zmax, zmax) + 0.5)
    bonds = []
    for a, b, length, s in zip(i, j, d, shift, strict=True):
        za, zb = int(z[a]), int(z[b])
        if not _may_bond(za, zb) or length > _bond_cutoff(za, zb):
            continue
        key = (int(a), int(b), tuple(int(v) for v in s))
        rev = (int(b), int(a), tuple(-int(v) for v in s))
        if key < rev:  # each bond once
            bonds.append((*key, float(length)))
    return bonds


def _coordination(bonds: list[tuple[int, int, Any, float]], n_host: int) -> np.ndarray:
    count = np.zeros(n_host, int)
    for a, b, _, _ in bonds:
        count[a] += 1
        count[b] += 1
    return count


def reaction_check(relaxed: Atoms, clean: Atoms) -> ReactionCheck:
    """Compare the host part of ``relaxed`` (host + Li, Li last) with the clean host.

    Parameters
    ----------
    relaxed
        Relaxed host + inserted Li; its first ``len(clean)`` atoms are the host in the same
        order as ``clean``.
    clean
        The relaxed clean host (the reference geometry of the binding energy).

    Returns
    -------
    ReactionCheck
        ``reactive`` and the bonds/coordinations that changed (see :data:`REACTION_RULE`).
    """
    n = len(clean)
    if len(relaxed) < n or list(relaxed.numbers[:n]) != list(clean.numbers):
        raise ValueError("relaxed must start with the clean host's atoms in the same order")
    disp = mic_vectors(clean, relaxed.positions[:n] - clean.positions)
    moved = clean.copy()
    moved.positions = clean.positions + disp  # host atoms followed continuously
    cell = np.asarray(relaxed.cell[:], float)
    symbols = clean.get_chemical_symbols()
    broken = []
    for a, b, s, d0 in host_bonds(clean, n):
        d1 = float(np.linalg.norm(moved.positions[b] + np.asarray(s) @ cell - moved.positions[a]))
        cut = BREAK_CUTOFFS.get(frozenset((symbols[a], symbols[b])))
        if d1 > STRETCH * d0 or (cut is not None and d1 > cut):
            broken.append(f"{symbols[a]}{a}-{symbols[b]}{b} {d0:.2f} -> {d1:.2f} A")
    relaxed_host = moved.copy()
    relaxed_host.cell = relaxed.cell
    before = _coordination(host_bonds(clean, n), n)
    after = _coordination(host_bonds(relaxed_host, n), n)
    changes = [f"{symbols[k]}{k}: {before[k]} -> {after[k]}"
               for k in np.flatnonzero(before != after)]
    return ReactionCheck(reactive=bool(broken or changes), broken=broken,
                         coordination_changes=changes)


def li_moment(relaxed: Atoms) -> float | None:
    """Magnetic moment (mu_B) on the last atom (the Li) from the stored ``magmoms``."""
    calc = relaxed.calc
    moments = None if calc is None else calc.results.get("magmoms")
    if moments is None or len(moments) != len(relaxed):
        return None
    return float(np.asarray(moments)[-1])


def check_site(result: SiteResult, relaxed: Atoms, clean: Atoms, *, factory: Any = None,
               workdir: Path | str | None = None, meter: Any = None) -> SiteResult:
    """The site with its reaction check, Li charge and Li moment filled in (the recipe hook).

    Parameters
    ----------
    result
        The site as :func:`interphase_dft.recipes.binding.host_binding` built it.
    relaxed
        The relaxed host + Li (Li last), with the relaxation's stored results.
    clean
        The relaxed clean host.
    factory, workdir
        The site's calculator factory and directory: the Li charge is computed by one SCF
        there (GPAW only, cached in ``workdir/charge.json``); None skips the charge.
    meter
        The run's cost ledger for that SCF (:func:`interphase_dft.calc.charges.li_charge`).
    """
    check = reaction_check(relaxed, clean)
    update: dict[str, Any] = {"reactive": check.reactive, "reaction_note": check.note,
                              "li_magnetic_moment": li_moment(relaxed)}
    if factory is not None and workdir is not None:
        from interphase_dft.calc.charges import li_charge
        from interphase_dft.calc.factory import seed_moment

        atoms = relaxed.copy()
        atoms.calc = None
        if result.spin == "paired (moment collapsed)" and hasattr(factory, "paired"):
            factory = factory.paired()
        elif result.spin == "polarised":
            atoms = seed_moment(atoms, len(atoms) - 1)
        update["li_charge"], update["li_charge_note"] = li_charge(atoms, factory, workdir,
                                                                      meter=meter)
    return result.model_copy(update=update)
