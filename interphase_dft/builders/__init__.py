"""Structure builders: Atoms in, Atoms out (no calculators, no I/O).

Modules
-------
argyrodite  ordered approximants of Li6PS5Cl and Cl-rich LPSC (Ewald-ranked orderings)
slabs       every termination of an (hkl) slab; ``choose_surface`` with a stated rule
interfaces  lattice-matched A|B cells (pymatgen ZSL + Interface), sorted by (atoms, strain)
sites       bulk interstitials, surface adsorption sites, vacancies, ``insert_li``,
            ``remove_atom``, ``supercell_for``
neb         interface / vacancy-hop endpoints and order-preserving IDPP interpolation
units       rigid units (P4S10 molecules, PS4 tetrahedra) kept whole by slabs and interfaces
reference   regenerate the files in ``structures/``
"""

from __future__ import annotations
