"""The phase library: conventional bulk cells of every phase of the Al-anode/LPSC interphase.

Every structure is generated here from crystallographic data (space group, Wyckoff positions,
lattice parameters, literature source recorded in :class:`PhaseInfo`); nothing is downloaded.
Lengths in Angstrom, angles in degrees.

Public API
----------
``PHASE_NAMES``            canonical names, one name per phase across code, CLI and documents
``PhaseInfo``              frozen metadata record
``phase_info(name)``       metadata of one phase
``resolve_phase(name)``    case-insensitive name -> canonical name (``InputError`` otherwise)
``get_bulk(name)``         a fresh conventional-cell :class:`ase.Atoms`
``is_metal(name)``         True for Al, LiAl, Li
``relax_cell_in_bulk``     True when bulk mode relaxes the cell (molecular crystals always)

``structures/README.md`` lists the provenance of every number used below.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal

from interphase_dft.errors import InputError

PHASE_NAMES: tuple[str, ...] = (
    "Al", "LiAl", "LPSC", "Li6PS5Cl", "Li2S", "Li3P", "LiCl", "P2S5", "Li",
)


@dataclass(frozen=True)
class PhaseInfo:
    """Metadata of one phase.

    Attributes
    ----------
    name : canonical name (see ``PHASE_NAMES``)
    formula : reduced formula of the cell returned by :func:`get_bulk`
    spacegroup : International Tables number of the *experimental* (parent) structure
    lattice : (a, b, c, alpha, beta, gamma) in Angstrom / degrees, experimental
    source : literature source of the lattice parameters and Wyckoff positions
    structure_type : prototype / description
    is_metal : metals need Fermi-Dirac smearing and denser k-point meshes
    needs_dispersion : van der Waals bound (P4S10 molecular crystal) -> DFT-D3
    ordered_approximant : True when the cell is an ordered model of a disordered phase
    molecular : molecular crystal (P4S10 cages held by van der Waals forces): its cell is
        the least certain part of the model, so bulk mode relaxes the cell as well (see
        :func:`relax_cell_in_bulk`)
    """

    name: str
    formula: str
    spacegroup: int
    lattice: tuple[float, float, float, float, float, float]
    source: str
    structure_type: str
    is_metal: bool = False
    needs_dispersion: bool = False
    ordered_approximant: bool = False
    molecular: bool = False


def _cub(a: float) -> tuple[float, float, float, float, float, float]:
    return (a, a, a, 90.0, 90.0, 90.0)


_A_LPSC = 9.85
# P4S10 (P2S5) cell: see structures/README.md for the caveat on these numbers.
_P4S10_CELL = (9.07, 9.19, 9.19, 92.4, 101.2, 110.5)

_INFO: dict[str, PhaseInfo] = {
    "Al": PhaseInfo(
        "Al", "Al", 225, _cub(4.0495),
        "fcc Al, Fm-3m, Al on 4a; a = 4.0495 A (room temperature X-ray value, "
        "R. W. G. Wyckoff, Crystal Structures vol. 1, 2nd ed., Interscience 1963)",
        "A1 (Cu)", is_metal=True,
    ),
    "LiAl": PhaseInfo(
        "LiAl", "LiAl", 227, _cub(6.37),
        "B32 / NaTl type, Fd-3m (origin choice 1): Li on 8a, Al on 8b; a = 6.37 A "
        "(E. Zintl, G. Woltersdorf, Z. Elektrochem. 41, 876 (1935))",
        "B32 (NaTl)", is_metal=True,
    ),
    "LPSC": PhaseInfo(
        "LPSC", "Li11P2S9Cl3", 216, _cub(_A_LPSC),
        "Cl-rich argyrodite Li5.4PS4.4Cl1.6 modelled by the ordered approximant "
        "Li11P2S9Cl3 (= Li5.5PS4.5Cl1.5) in the tetragonal half cell (a/sqrt2, a/sqrt2, a) of "
        "the F-43m argyrodite (variant='conventional': Li22P4S18Cl6 cubic cell); parent "
        "Li6PS5Cl: H.-J. Deiseroth et al., Angew. Chem. Int. Ed. 47, 755 (2008); a = 9.85 A",
        "argyrodite (ordered approximant)", ordered_approximant=True,
    ),
    "Li6PS5Cl": PhaseInfo(
        "Li6PS5Cl", "Li6PS5Cl", 216, _cub(_A_LPSC),
        "argyrodite Li6PS5Cl, F-43m: P 4b, S 16e (PS4), Cl 4a, S 4c, Li 48h (half occupied); "
        "H.-J. Deiseroth et al., Angew. Chem. Int. Ed. 47, 755 (2008); a = 9.85 A",
        "argyrodite (ordered approximant)", ordered_approximant=True,
    ),
    "Li2S": PhaseInfo(
        "Li2S", "Li2S", 225, _cub(5.71),
        "antifluorite, Fm-3m: S on 4a, Li on 8c; a = 5.71 A "
        "(E. Zintl, A. Harder, B. Dauth, Z. Elektrochem. 40, 588 (1934): a = 5.708 A)",
        "C1 antifluorite",
    ),
    "Li3P": PhaseInfo(
        "Li3P", "Li3P", 194, (4.27, 4.27, 7.59, 90.0, 90.0, 120.0),
        "Na3As (D0_18) type, P6_3/mmc: P 2c, Li1 2b, Li2 4f z = 0.583 (Na3As prototype "
        "value); a = 4.27, c = 7.59 A (G. Brauer, E. Zintl, Z. Phys. Chem. B 37, 323 (1937))",
        "D0_18 (Na3As)",
    ),
    "LiCl": PhaseInfo(
        "LiCl", "LiCl", 225, _cub(5.13),
        "rock salt, Fm-3m: Li 4a, Cl 4b; a = 5.13 A (room temperature; "
        "R. W. G. Wyckoff, Crystal Structures vol. 1, 1963: 5.1295 A)",
        "B1 (NaCl)",
    ),
    "P2S5": PhaseInfo(
        "P2S5", "P2S5", 2, _P4S10_CELL,
        "P4S10 molecular crystal, P-1, Z = 2 molecules; cell after A. Vos, E. H. Wiebenga, "
        "Acta Cryst. 8, 217 (1955) (values not verifiable offline, see structures/README.md); "
        "molecule BUILT here (adamantane-like P4S6 cage, P-S(bridge) 2.09 A, P=S 1.91 A), "
        "packed as an inversion pair with the widest contacts (S...S 3.48 A): NOT the refined "
        "experimental coordinates",
        "molecular crystal (P4S10 cages)", needs_dispersion=True, molecular=True,
    ),
    "Li": PhaseInfo(
        "Li", "Li", 229, _cub(3.51),
        "bcc Li, Im-3m, Li on 2a; a = 3.51 A (room temperature; Wyckoff, Crystal Structures "
        "vol. 1, 1963: 3.5093 A)",
        "A2 (W)", is_metal=True,
    ),
}

_ALIASES = {
    "li5.4ps4.4cl1.6": "LPSC", "argyrodite": "LPSC", "lpsc": "LPSC",
    "p4s10": "P2S5", "li_bcc": "Li", "bcc_li": "Li", "lial_b32": "LiAl",
}


def resolve_phase(name: str) -> str:
    """Return the canonical phase name for ``name`` (case-insensitive).

    Raises
    ------
    InputError
        Unknown name; the message suggests the nearest known name (difflib).
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"phase name must be a non-empty string, got {name!r}")
    key = name.strip()
    lower = {n.lower(): n for n in PHASE_NAMES}
    if key.lower() in lower:
        return lower[key.lower()]
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    candidates = list(PHASE_NAMES) + list(_ALIASES)
    close = difflib.get_close_matches(key.lower(), [c.lower() for c in candidates], n=1, cutoff=0.3)
    hint = ""
    if close:
        match = next(c for c in candidates if c.lower() == close[0])
        hint = f" Did you mean {_ALIASES.get(match, match)!r}?"
    raise InputError(
        f"unknown phase {name!r}.{hint} Known phases: {', '.join(PHASE_NAMES)}."
    )


def phase_info(name: str) -> PhaseInfo:
    """Metadata (:class:`PhaseInfo`) of phase ``name``."""
    return _INFO[resolve_phase(name)]


def is_metal(name: str) -> bool:
    """True for the metallic phases (Al, LiAl, Li)."""
    return phase_info(name).is_metal


def relax_cell_in_bulk(name: str, relax_cell_bulk: bool) -> bool:
    """True when the bulk-mode recipe relaxes the cell of ``name`` before building the
    supercell: always for molecular crystals (:attr:`PhaseInfo.molecular`, P2S5), else as
    ``settings.relax.relax_cell_bulk`` says."""
    return relax_cell_bulk or phase_info(name).molecular


VARIANTS = ("conventional", "tetragonal")


def get_bulk(name: str, *, variant: str | None = None) -> Atoms:
    """Return a fresh conventional cell of phase ``name``.

    ``variant`` only applies to the argyrodites: ``'conventional'`` (cubic cell, 4 formula
    units; default for Li6PS5Cl, 52 atoms) or ``'tetragonal'`` (half cell, 2 formula units;
    default for LPSC, 25 atoms Li11P2S9Cl3, which keeps interface cells laptop-sized).

    ``atoms.info`` holds ``phase``, ``spacegroup`` (of the cell as built; for ordered
    approximants this is lower than the parent group), ``parent_spacegroup``, ``source`` and
    for the argyrodites ``ordering`` (the rule that picked the ordered arrangement).
    """
    canonical = resolve_phase(name)
    if variant is not None and (variant not in VARIANTS or canonical not in ("LPSC", "Li6PS5Cl")):
        raise InputError(f"variant={variant!r} is only defined for LPSC and Li6PS5Cl "
                         f"(choose one of {VARIANTS})")
    if variant is None:
        variant = "tetragonal" if canonical == "LPSC" else "conventional"
    atoms = _build_cached(canonical, variant).copy()
    atoms.info = dict(atoms.info)
    return atoms


@functools.cache
def _build_cached(name: str, variant: str) -> Atoms:
    """Pure builder (same input -> same Atoms); memoised because LPSC ordering takes ~1 s."""
    info = _INFO[name]
    a, b, c, alpha, beta, gamma = info.lattice
    cellpar = [a, b, c, alpha, beta, gamma]
    extra: dict[str, object] = {}
    if name == "Al":
        atoms = crystal(["Al"], [(0, 0, 0)], spacegroup=225, cellpar=cellpar)
    elif name == "LiAl":
        atoms = crystal(["Li", "Al"], [(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=227,
                        cellpar=cellpar, setting=1)
    elif name == "Li2S":
        atoms = crystal(["S", "Li"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225,
                        cellpar=cellpar)
    elif name == "Li3P":
        atoms = crystal(["P", "Li", "Li"], [(1 / 3, 2 / 3, 0.25), (0, 0, 0.25),
                                           (1 / 3, 2 / 3, 0.583)],
                        spacegroup=194, cellpar=cellpar)
    elif name == "LiCl":
        atoms = crystal(["Li", "Cl"], [(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                        cellpar=cellpar)
    elif name == "Li":
        atoms = crystal(["Li"], [(0, 0, 0)], spacegroup=229, cellpar=cellpar)
    elif name == "P2S5":
        atoms = _p4s10_crystal(cellpar)
    else:  # argyrodites
        from interphase_dft.builders.argyrodite import ordered_argyrodite

        composition = "Li6PS5Cl" if name == "Li6PS5Cl" else "Li5.5PS4.5Cl1.5"
        atoms, extra = ordered_argyrodite(composition, a=_A_LPSC, cell=variant)
    atoms.arrays.pop("spacegroup_kinds", None)
    atoms = _sorted_by_species(atoms)
    atoms.pbc = True
    atoms.info = {
        "phase": name,
        "spacegroup": int(extra.get("spacegroup", info.spacegroup)),
        "parent_spacegroup": info.spacegroup,
        "source": info.source,
        "is_metal": info.is_metal,
        "needs_dispersion": info.needs_dispersion,
        **{k: v for k, v in extra.items() if k != "spacegroup"},
    }
    return atoms


def _sorted_by_species(atoms: Atoms) -> Atoms:
    """Stable order: Li first, then by atomic number; positions wrapped into the cell."""
    z = atoms.numbers
    key = np.where(z == 3, 0, z)
    order = np.argsort(key, kind="stable")
    out = atoms[order]
    out.wrap()
    return out


# --- P4S10 ---------------------------------------------------------------------------------
P_S_BRIDGE = 2.09  # Angstrom
P_S_TERMINAL = 1.91  # Angstrom


def p4s10_molecule() -> Atoms:
    """The P4S10 molecule (Td), centred at the origin.

    Adamantane geometry: P on alternate cube corners (d, d, d) with d = 2.09/sqrt(3), six
    bridging S on the octahedral positions (+-2d, 0, 0), ..., so that P-S(bridge) = 2.09 A and
    all cage angles are tetrahedral; one terminal S per P along the outward <111> direction
    at 1.91 A.
    """
    d = P_S_BRIDGE / np.sqrt(3.0)
    p_dirs = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)], float)
    p_pos = d * p_dirs
    s_bridge = 2 * d * np.vstack([np.eye(3), -np.eye(3)])
    s_term = p_pos + P_S_TERMINAL * p_dirs / np.sqrt(3.0)
    return Atoms("P4S10", positions=np.vstack([p_pos, s_bridge, s_term]))


#: packing of the two P4S10 molecules in the experimental cell, found once by
#: ``builders.molecular.pack_inversion_pair(p4s10_molecule(), cell)`` (seed 0, 300 starts, 8
#: refined; about 30 s, so stored here): fractional centre of the first molecule (the second
#: is its inversion image) and its rotation vector (radians)
_P4S10_CENTRE = (0.16286767, 0.26048451, 0.31818776)
_P4S10_ROTVEC = (0.66412224, -0.0240943, 1.51155874)


def _p4s10_crystal(cellpar: list[float]) -> Atoms:
    """Two P4S10 molecules related by inversion in the P-1 cell ``cellpar``.

    The molecule centre and orientation are :data:`_P4S10_CENTRE` / :data:`_P4S10_ROTVEC`:
    the packing with the widest intermolecular contacts in this cell
    (:func:`interphase_dft.builders.molecular.pack_inversion_pair`); shortest S...S between
    molecules 3.48 A (van der Waals contact 3.3-3.6 A).
    """
    from interphase_dft.builders.molecular import inversion_pair

    cell = crystal(["H"], [(0, 0, 0)], spacegroup=1, cellpar=cellpar).cell[:]
    return inversion_pair(p4s10_molecule(), cell, np.array(_P4S10_CENTRE),
                          np.array(_P4S10_ROTVEC))
