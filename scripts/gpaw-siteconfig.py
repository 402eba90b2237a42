# GPAW build configuration used by scripts/bootstrap.sh (GPAW_CONFIG): link ScaLAPACK.
# Without it GPAW 26 cannot distribute a plane-wave calculation over more MPI ranks than it has
# irreducible k-points (Gamma-only cells, e.g. the 76-atom LPSC slab on 2 ranks): it stops with
# "assert c == 1" in gpaw/core/matrix.py (BLACSDistribution). Debian: libscalapack-openmpi-dev.
scalapack = True
libraries += ['scalapack-openmpi']  # noqa: F821 (GPAW's config defines `libraries`)
