"""Structure builders: Atoms in, Atoms out (no calculators, no I/O).

Modules
-------
argyrodite  ordered approximants of Li6PS5Cl and Cl-rich LPSC (Ewald-ranked orderings)
slabs       every termination of an (hkl) slab; ``choose_surface`` with a stated rule
interfaces  lattice-matched A|B cells (pymatgen ZSL + Interface), sorted by (atoms, strain)
sites       bulk interstitials, surface adsorption sites, vacancies, ``insert_li``,
            ``remove_atom``, ``supercell_for``
neb         interface / vacancy-hop endpoints and order-preserving IDPP interpolation
migration   migration cells: one A|B interface, vacuum, sides >= a thickness, outer thirds
            fixed, registry (shift, gap) as parameters
thickness   lattice-match plans ranked by atoms at a required side thickness; atomic planes
contact     bulk Li-host reference distances, geometric contact gap and registry
hops        vacancy crossing between Li lattice sites of A and B (``Hop`` endpoints)
interstitial  interstitial candidates of the interfacial layers and the gap; unrelaxed guess
slab_properties  surface descriptors of a slab (termination, dipole, stoichiometry, broken bonds)
lattice_match    ZSL lattice-match search for interfaces and the principal-strain measure
molecular   packing of molecular crystals (P4S10 inversion pair with the widest contacts)
units       rigid units (P4S10 molecules, PS4 tetrahedra) kept whole by slabs and interfaces
reference   the reference structures committed in ``structures/``
"""

from __future__ import annotations
