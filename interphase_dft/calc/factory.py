"""GPAW calculator factory: one place that turns :class:`CalcSettings` into a calculator.

Conventions (all stored with the result through the settings object):

* mode ``pw`` (cutoff ``dft.ecut``, eV), ``lcao`` (basis ``dft.basis``, grid ``dft.h``) or ``fd``;
* Gamma-centred k-point mesh from ``dft.kpt_density`` (ASE ``kptdensity`` convention, k-points
  per reciprocal Angstrom including the 2 pi), one k-point along non-periodic directions and the
  Gamma point only when the cell has at least ``dft.gamma_only_atoms`` atoms;
* Fermi-Dirac smearing, ``dft.smearing_width`` for metals and ``dft.insulator_smearing`` else;
  cells of a Li insertion (``li_inserted``: binding energies, NEB) get at least
  ``dft.li_insertion_smearing``;
* spin: the host + Li cells of an insertion into a non-metal are spin-polarised with 1 mu_B
  on the inserted Li (:func:`insertion_spin`, :func:`seed_moment`); everything else is
  spin-paired except the isolated Li atom reference. A spin-polarised insertion SCF whose
  moment collapses is stopped and recomputed spin-paired (:mod:`interphase_dft.calc.spin`,
  ``dft.spin_collapse_moment``);
* point-group symmetry off when atoms move (relaxations, NEB): GPAW >= 25 raises
  ``SymmetryBrokenError`` when a geometry step breaks the symmetry it found at the start;
  time-reversal symmetry is kept (it does not depend on positions and halves the k-points);
* dipole-layer correction along the non-periodic axis of slabs (``pbc`` = (T, T, F));
  GPAW's new code supports it in PW mode as well;
* DFT-D3(BJ) when ``dft.dispersion == 'd3'``: on every calculation with the default
  ``dft.dispersion_scope == 'all'``, only where ``dispersion`` is requested (P2S5) with
  ``'phase'`` (:mod:`interphase_dft.calc.dispersion`).

SCF retries: ``attempt`` > 0 returns a "safer" calculator (mixer beta halved per attempt,
more history, more iterations); the smearing stays as set, so a retried energy stays
comparable with the energies it is subtracted from. Runners call it after a
``ConvergenceError`` (:class:`interphase_dft.calc.guard.GuardedCalculator`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, kptdensity2monkhorstpack
from ase.parallel import world

from interphase_dft.calc.dispersion import add_d3, dispersion_applied, surrogate_d3_xc
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.calc.spin import attach_collapse_watch
from interphase_dft.errors import InputError

#: ``atoms.info`` key: the atom count the Gamma-only rule reads instead of ``len(atoms)``
#: (a part of a cell, e.g. one side of an interface alone, takes the whole cell's mesh, so
#: that energy differences between them share one k-point sampling)
KPOINT_ATOMS = "kpoint_atoms"


def same_mesh_as(part: Atoms, whole: Atoms) -> Atoms:
    """``part`` (modified and returned) tagged to get the k-point mesh of ``whole``: a cell a
    few atoms away from ``whole`` (host + Li, host - Li, one side alone) whose energy is
    subtracted from it, so both sit on one side of ``dft.gamma_only_atoms``."""
    part.info[KPOINT_ATOMS] = int(whole.info.get(KPOINT_ATOMS, len(whole)))
    return part


def density_mesh(atoms: Atoms) -> Atoms:
    """``atoms`` (modified and returned) tagged to take the mesh of ``dft.kpt_density``
    whatever its size: the Gamma-only rule is a cost shortcut that must not split the cells
    of one energy difference (a bulk cell and the slabs whose surface energy it gives)."""
    atoms.info[KPOINT_ATOMS] = 0
    return atoms


def mesh_tag(atoms: Atoms, dft: dict[str, Any] | None) -> dict[str, int]:
    """``{'kpoint_atoms': n}`` when ``atoms`` carries a mesh tag that gives it another
    k-point mesh than its own size would under the ``dft`` settings (a dict of
    ``DFTSettings``; a calculation on another mesh is another calculation, so checkpoint
    fingerprints include it), else ``{}`` (no tag, no DFT settings, or the same mesh)."""
    tag = atoms.info.get(KPOINT_ATOMS)
    if tag is None or not dft:
        return {}
    density, rule = float(dft.get("kpt_density", 0.0)), int(dft.get("gamma_only_atoms", 0))
    plain = atoms.copy()
    plain.info.pop(KPOINT_ATOMS, None)
    if kpoint_mesh(atoms, density, rule) == kpoint_mesh(plain, density, rule):
        return {}
    return {KPOINT_ATOMS: int(tag)}


def kpoint_mesh(atoms: Atoms, kpt_density: float, gamma_only_atoms: int) -> tuple[int, int, int]:
    """Monkhorst-Pack sizes for ``atoms`` (1 along directions with ``pbc`` False).

    Parameters
    ----------
    atoms
        The cell; ``atoms.pbc`` marks the periodic directions; ``atoms.info[KPOINT_ATOMS]``,
        when set, is the atom count of the Gamma-only rule.
    kpt_density
        k-points per reciprocal Angstrom (ASE convention, ``2 pi / |a|`` scaled); 0 = Gamma.
    gamma_only_atoms
        Cells with at least this many atoms use the Gamma point only.
    """
    n_atoms = int(atoms.info.get(KPOINT_ATOMS, len(atoms)))
    if kpt_density <= 0 or n_atoms >= gamma_only_atoms or not atoms.pbc.any():
        return (1, 1, 1)
    sizes = kptdensity2monkhorstpack(atoms, kptdensity=kpt_density, even=False)
    return tuple(int(n) if p else 1 for n, p in zip(sizes, atoms.pbc, strict=True))


def gamma_only_note(atoms: Atoms, settings: CalcSettings, *, is_metal: bool) -> str | None:
    """A warning when a cell is sampled at the Gamma point only because it has at least
    ``dft.gamma_only_atoms`` atoms while ``dft.kpt_density`` asks for more k-points, else
    None. A metal's Fermi surface needs the mesh most; an insulator is flagged too, because
    the Li3P|LiCl migration cell (64 atoms, 7.4 x 7.6 A in-plane, a small-gap pair) measured
    the Gamma-only error: at 2x2x1 its Gamma minima and saddle carry 0.19-0.25 eV/A and their
    energies relative to the initial state move by about 0.05 eV (docs/validation.md)."""
    d = settings.dft
    if d.kpt_density <= 0 or len(atoms) < d.gamma_only_atoms:
        return None
    dense = kpoint_mesh(atoms, d.kpt_density, len(atoms) + 1)
    if dense == (1, 1, 1):
        return None
    kind = "metallic" if is_metal else "insulating"
    return (f"{kind} cell of {len(atoms)} atoms sampled at the Gamma point only "
            f"(dft.gamma_only_atoms = {d.gamma_only_atoms}); dft.kpt_density "
            f"{d.kpt_density} would give {'x'.join(map(str, dense))}: the k-point convergence "
            "of this result is untested (check with `interphase-dft sensitivity --set "
            f"dft.gamma_only_atoms={len(atoms) + 1}` on a certified barrier)")


def needs_dipole_correction(atoms: Atoms) -> bool:
    """True for slabs: exactly two periodic directions (the vacuum axis is the third)."""
    return int(np.sum(atoms.pbc)) == 2


def smearing_width(settings: CalcSettings, *, is_metal: bool, li_inserted: bool = False) -> float:
    """Fermi-Dirac width (eV) of the first SCF attempt (see the module docstring)."""
    d = settings.dft
    width = d.smearing_width if is_metal else d.insulator_smearing
    if li_inserted and d.li_insertion_smearing is not None:
        width = max(width, d.li_insertion_smearing)
    return width


def insertion_spin(settings: CalcSettings, *, is_metal: bool) -> bool:
    """True when the cells of a Li insertion into this host are spin-polarised
    (``dft.li_insertion_spin``, non-metallic host, GPAW engine)."""
    return settings.dft.li_insertion_spin and not is_metal and settings.engine == "gpaw"


def seed_moment(atoms: Atoms, index: int, moment: float = 1.0) -> Atoms:
    """Copy of ``atoms`` (constraints kept) whose only initial magnetic moment is ``moment``
    (mu_B) on atom ``index``: the inserted Li of a spin-polarised insertion cell."""
    out = atoms.copy()
    moments = np.zeros(len(out))
    moments[index] = moment
    out.set_initial_magnetic_moments(moments)
    return out


def scf_parameters(settings: CalcSettings, *, is_metal: bool, attempt: int = 0,
                   li_inserted: bool = False, spin: bool = False,
                   mixer: str | None = None) -> dict[str, Any]:
    """Mixer, smearing and iteration limit for SCF attempt number ``attempt`` (0 = as set).

    Spin-polarised runs use ``dft.spin_mixer`` (Pulay), spin-paired ones ``dft.mixer``;
    ``mixer`` overrides the backend (the spin-paired recomputation of a collapsed moment).
    """
    d = settings.dft
    width = smearing_width(settings, is_metal=is_metal, li_inserted=li_inserted)
    beta = d.mixer_beta
    maxiter = d.maxiter
    if attempt > 0:
        beta = d.mixer_beta / 2**attempt
        maxiter = d.maxiter * (1 + attempt)
    return {
        "mixer": {"backend": mixer or (d.spin_mixer if spin else d.mixer), "beta": beta,
                  "nmaxold": 5 + 3 * attempt, "weight": 50.0},
        "occupations": {"name": "fermi-dirac", "width": width},
        "maxiter": maxiter,
    }


def gpaw_parameters(
    settings: CalcSettings,
    atoms: Atoms,
    *,
    moving: bool,
    is_metal: bool,
    spin: bool = False,
    attempt: int = 0,
    li_inserted: bool = False,
    mixer: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``gpaw.GPAW`` (without ``txt``); see the module docstring."""
    d = settings.dft
    if d.mode == "pw":
        mode: dict[str, Any] = {"name": "pw", "ecut": d.ecut}
    elif d.mode == "lcao":
        mode = {"name": "lcao"}
    else:
        mode = {"name": "fd"}
    params: dict[str, Any] = {
        "mode": mode,
        "xc": d.xc,
        "kpts": {"size": kpoint_mesh(atoms, d.kpt_density, d.gamma_only_atoms), "gamma": True},
        "convergence": {"energy": d.scf_energy, "density": d.scf_density},
    }
    if d.mode in ("lcao", "fd"):
        params["h"] = d.h
    if d.mode == "lcao":
        params["basis"] = d.basis
    params.update(scf_parameters(settings, is_metal=is_metal, attempt=attempt,
                                 li_inserted=li_inserted, spin=spin, mixer=mixer))
    if moving:
        # point-group symmetry breaks when atoms move; time reversal does not, and keeping it
        # halves the k-points of non-Gamma meshes
        params["symmetry"] = {"point_group": False, "time_reversal": True}
    if needs_dipole_correction(atoms):
        params["poissonsolver"] = {"dipolelayer": "xy"}
    if spin:
        params["spinpol"] = True
    else:
        # spin-paired even when the atoms carry initial moments: GPAW switches spin polarisation
        # on for any non-zero initial moment, and a geometry recomputed after a collapsed
        # moment still has the 1 mu_B seeded on its Li
        params["magmoms"] = [0.0] * len(atoms)
    return params


def make_calculator(
    settings: CalcSettings,
    atoms: Atoms,
    *,
    txt: str | Path | None,
    moving: bool,
    is_metal: bool,
    spin: bool = False,
    dispersion: bool = False,
    attempt: int = 0,
    li_inserted: bool = False,
    extra: dict[str, Any] | None = None,
    mixer: str | None = None,
) -> Calculator:
    """Return the ASE calculator for ``atoms`` with ``settings``.

    Parameters
    ----------
    settings
        Full calculation settings (only ``settings.dft`` is used here).
    atoms
        Geometry; its cell, ``pbc`` and size set k-points and dipole correction.
    txt
        GPAW log file (``None`` = silent).
    moving
        Atoms will move (relax/NEB): point-group symmetry is switched off (time reversal kept).
    is_metal
        Use the metal smearing width.
    spin
        Spin-polarised calculation (initial moments from ``atoms``).
    dispersion
        The phase needs dispersion (P2S5); see
        :func:`interphase_dft.calc.dispersion.dispersion_applied` for when D3(BJ) is added.
    attempt
        SCF retry number (0 = settings as given, > 0 = safer mixing, same smearing).
    li_inserted
        The cell belongs to a Li insertion (binding energy, NEB): smearing at least
        ``dft.li_insertion_smearing``.
    extra
        GPAW keywords that replace the computed ones (e.g. ``{'hund': True}`` for the atom).
    mixer
        Density-mixer backend instead of the one ``spin`` selects (``dft.mixer`` or
        ``dft.spin_mixer``).
    """
    if settings.engine != "gpaw":
        raise InputError(
            f"make_calculator builds GPAW calculators but settings.engine={settings.engine!r}; "
            "use interphase_dft.calc.ml.ml_calculator for the surrogate"
        )
    from gpaw import GPAW

    params = gpaw_parameters(
        settings, atoms, moving=moving, is_metal=is_metal, spin=spin, attempt=attempt,
        li_inserted=li_inserted, mixer=mixer,
    )
    params.update(extra or {})
    calc: Calculator = GPAW(txt=str(txt) if txt is not None else None, **params)
    if spin and li_inserted:
        attach_collapse_watch(calc, settings.dft.spin_collapse_moment,
                              settings.dft.spin_collapse_window)
    if dispersion_applied(settings, dispersion) == "d3":
        calc = add_d3(calc, settings.dft.xc)
    return calc


def rotate_log(path: str | Path) -> Path | None:
    """Move a non-empty log ``path`` aside before a new calculator writes it.

    GPAW opens its ``txt`` file for writing, so a resumed run (or the retry of an SCF) would
    erase the log of the run before it. The logs are rotated instead, none deleted:
    ``gpaw.txt`` -> ``gpaw.txt.1`` (the newest earlier log), ``.1`` -> ``.2``, and so on.
    Returns the path the log was moved to (None: nothing to keep).
    """
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    n = 1
    while p.with_name(f"{p.name}.{n}").exists():
        n += 1
    for k in range(n - 1, 0, -1):
        p.with_name(f"{p.name}.{k}").replace(p.with_name(f"{p.name}.{k + 1}"))
    target = p.with_name(f"{p.name}.1")
    p.replace(target)
    return target


@dataclass(frozen=True)
class GPAWFactory:
    """Picklable recipe for GPAW calculators: ``factory(atoms, attempt)`` -> calculator.

    Runners call it once per structure (and once per NEB image) and again with a larger
    ``attempt`` when the SCF does not converge. ``txt`` names the GPAW log; ``label`` is
    appended so NEB images get separate logs. An existing log is rotated, never overwritten
    (:func:`rotate_log`): a resumed run keeps the log of the run it continues.
    """

    settings: CalcSettings
    is_metal: bool
    moving: bool = True
    spin: bool = False
    dispersion: bool = False
    txt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    li_inserted: bool = False
    mixer: str | None = None
    #: every cell gets the ``dft.kpt_density`` mesh whatever its size (interface hops,
    #: ``structure.interface_density_mesh``): the Gamma-only rule does not apply
    density_mesh: bool = False

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        txt = self.txt
        if txt is not None:
            p = Path(txt)
            if label and label not in p.stem:
                p = p.with_name(f"{p.stem}-{label}{p.suffix}")
            if world.rank == 0:
                p.parent.mkdir(parents=True, exist_ok=True)
                rotate_log(p)  # GPAW opens txt for writing: keep the log of the earlier run
            world.barrier()
            txt = str(p)
        if self.density_mesh:  # the mesh is read from the cell: a tagged copy gives it
            atoms = density_mesh(atoms.copy())
        return make_calculator(
            self.settings, atoms, txt=txt, moving=self.moving, is_metal=self.is_metal,
            spin=self.spin, dispersion=self.dispersion, attempt=attempt,
            li_inserted=self.li_inserted, extra=self.extra, mixer=self.mixer,
        )

    def paired(self) -> GPAWFactory:
        """The same recipe spin-paired (after a collapsed moment, see
        :mod:`interphase_dft.calc.spin`); its GPAW log gets a ``-paired`` suffix, so the
        stopped spin-polarised log is kept.

        It keeps the spin-polarised runs' mixer (``dft.spin_mixer``): a cell that needs it
        spin-polarised needs it spin-paired as well.
        """
        txt = self.txt
        if txt is not None:
            p = Path(txt)
            txt = str(p.with_name(f"{p.stem}-paired{p.suffix}"))
        return replace(self, spin=False, txt=txt, mixer=self.mixer or self.settings.dft.spin_mixer)

    @property
    def description(self) -> dict[str, Any]:
        """What this factory applies (stored in documents)."""
        return {
            "engine": "gpaw",
            "is_metal": self.is_metal,
            "li_inserted": self.li_inserted,
            "spin": self.spin,
            "dispersion": dispersion_applied(self.settings, self.dispersion),
            "symmetry": "time-reversal only" if self.moving else "on",
            "dft": self.settings.dft.model_dump(),
            "extra": dict(self.extra),
            **({"mixer": self.mixer} if self.mixer else {}),
            **({"kpoints": "dft.kpt_density mesh at every size"} if self.density_mesh else {}),
        }


def factory_for(settings: CalcSettings, *, is_metal: bool, dispersion: bool = False,
                moving: bool = True, spin: bool = False, txt: str | None = None,
                extra: dict[str, Any] | None = None, ml_model: Any = None,
                li_inserted: bool = False, density_mesh: bool = False) -> Any:
    """The calculator factory for ``settings.engine``: :class:`GPAWFactory` or ``MLFactory``.

    ``ml_model`` shares an already loaded surrogate between factories (engine ``'ml'``);
    ``li_inserted`` marks the cells of a Li insertion (smearing, see the module docstring);
    ``density_mesh``: every cell on the ``dft.kpt_density`` mesh (:class:`GPAWFactory`).
    """
    if settings.engine == "ml":
        return surrogate_factory(settings, dispersion=dispersion, ml_model=ml_model)
    return GPAWFactory(settings, is_metal=is_metal, moving=moving, spin=spin,
                       dispersion=dispersion, txt=txt, extra=dict(extra or {}),
                       li_inserted=li_inserted, density_mesh=density_mesh)


def surrogate_factory(settings: CalcSettings, *, dispersion: bool = False,
                      ml_model: Any = None) -> Any:
    """The ML surrogate's factory (:class:`interphase_dft.calc.ml.MLFactory`) for a phase.

    It gets DFT-D3(BJ) on top of CHGNet exactly when the DFT calculations of the phase do
    (:func:`interphase_dft.calc.dispersion.surrogate_d3_xc`), so surrogate geometries of
    vdW-bound phases (P2S5) hold together.
    """
    return MLFactory(settings.ml, _model=ml_model, d3_xc=surrogate_d3_xc(settings, dispersion))
