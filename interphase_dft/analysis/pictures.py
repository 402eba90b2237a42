"""Pictures of the interface cells of the barrier documents: initial, highest image, final.

Each picture is a side view of the stored NEB images (``BarrierDoc.images``): the interface
normal (z, side A at the bottom) points up the page and the view looks along the shorter
in-plane cell vector, so both phases and the interface between them are seen. Drawn with
:func:`ase.visualize.plot.plot_atoms` on matplotlib axes (no ``pyplot``), written as PNG and
SVG like the other figures (:func:`interphase_dft.analysis.plots._save`).

Which atom belongs to which phase
---------------------------------
The migration cell orders its atoms side A first, then side B
(:mod:`interphase_dft.builders.interfaces`, ``arrays['side']``), and the hop builders write
``n_atoms_a``, ``n_atoms_b`` and ``li_index`` into every endpoint's ``info``, which the
stored images keep (:class:`~interphase_dft.schemas.StructureData` keeps ``info`` but not
``arrays``). So atoms ``[0, n_atoms_a)`` are phase A, the next ``n_atoms_b`` phase B and
the rest (an interstitial Li appended to the cell) neither. A structure without these
counts, or whose counts do not add up to its atoms, is coloured by element and the caption
says so (:func:`caption`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from ase.data.colors import jmol_colors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from interphase_dft.schemas import BarrierDoc, StructureData

#: per phase, shades for its elements (lightest last); A blue, B orange
PHASE_SHADES = (("#1b4f9c", "#6f9fe0", "#b9d2f5", "#0b2a5c"),
                ("#b85400", "#f39a45", "#f8cc9c", "#6e3200"))
NEITHER = "#9e9e9e"  # an atom that belongs to neither side (other than the moving Li)
MOVING_LI = "#e0007a"  # the hopping Li, every panel
RADIUS_SCALE = 0.75  # fraction of the covalent radius drawn
INCH_PER_A = 0.2  # drawing scale of a small cell (a large one is shrunk to PANEL_MAX)
PANEL_MAX = (6.0, 4.6)  # largest panel, inches (width, height)


def is_interface(doc: BarrierDoc) -> bool:
    """True for a hop across an A|B interface (not a bulk reference hop)."""
    return doc.phase_a != doc.phase_b


def atom_sides(structure: StructureData) -> np.ndarray | None:
    """Side of every atom (0: phase A, 1: phase B, 2: neither) or None when not recorded.

    From ``info['n_atoms_a']`` and ``info['n_atoms_b']`` (see the module rules); None when
    they are missing or add up to more atoms than the structure has.
    """
    na, nb = structure.info.get("n_atoms_a"), structure.info.get("n_atoms_b")
    n = len(structure.symbols)
    if not isinstance(na, int) or not isinstance(nb, int) or na < 0 or nb < 0 or na + nb > n:
        return None
    side = np.full(n, 2, int)
    side[:na] = 0
    side[na:na + nb] = 1
    return side


def moving_li(doc: BarrierDoc) -> int | None:
    """Index of the hopping Li: ``info['li_index']`` of the first image, else the Li that
    moves most between the first and the last image (None without images or Li)."""
    if not doc.images:
        return None
    first, last = doc.images[0].structure, doc.images[-1].structure
    li = first.info.get("li_index")
    if isinstance(li, int) and 0 <= li < len(first.symbols) and first.symbols[li] == "Li":
        return li
    is_li = np.array([s == "Li" for s in first.symbols])
    if not is_li.any() or len(first.symbols) != len(last.symbols):
        return None
    move = np.linalg.norm(np.asarray(last.positions) - np.asarray(first.positions), axis=1)
    move[~is_li] = -1.0
    return int(np.argmax(move))


def highest_image(doc: BarrierDoc) -> int:
    """Index of the highest-energy image (the saddle when the band is certified)."""
    energies = (doc.energies if len(doc.energies) == len(doc.images)
                else [im.energy for im in doc.images])
    return int(np.argmax(energies))


def caption(doc: BarrierDoc) -> str:
    """The picture's caption: what is drawn and how the atoms are coloured."""
    k, n = highest_image(doc), len(doc.images)
    what = "saddle" if doc.certified else f"not a certified saddle: {doc.saddle}"
    head = (f"{doc.interface} ({doc.mechanism}): initial state, highest image {k} of "
            f"{n - 1} ({what}) and final state, side view with the interface normal up "
            f"(phase A {doc.phase_a} at the bottom).")
    li = moving_li(doc)
    li_text = ("" if li is None else
               f" The moving Li (atom {li}) is magenta in every panel.")
    if doc.images and atom_sides(doc.images[0].structure) is not None:
        return (head + f" Blue: {doc.phase_a} atoms, orange: {doc.phase_b} atoms (one shade "
                "per element)." + li_text)
    return (head + " The stored structures do not record which atoms belong to which phase "
            "(no n_atoms_a/n_atoms_b in their info), so atoms are coloured by element "
            "(Jmol colours)." + li_text)


def _colors(structure: StructureData, phases: tuple[str, str], li: int | None
            ) -> tuple[list[str], list[Line2D]]:
    """Colour per atom and the legend handles."""
    symbols = structure.symbols
    sides = atom_sides(structure)
    colors: list[str] = []
    handles: list[Line2D] = []

    def handle(color: str, label: str) -> Line2D:
        return Line2D([], [], marker="o", ls="", ms=8, mfc=color, mec="k", label=label)

    if sides is None:
        for sym in sorted(set(symbols), key=lambda s: atomic_numbers[s]):
            handles.append(handle(_hex(jmol_colors[atomic_numbers[sym]]), sym))
        colors = [_hex(jmol_colors[atomic_numbers[s]]) for s in symbols]
    else:
        shade: dict[tuple[int, str], str] = {}
        for s in (0, 1):
            elems = sorted({sym for sym, sd in zip(symbols, sides, strict=True) if sd == s},
                           key=lambda e: atomic_numbers[e])
            for k, sym in enumerate(elems):
                shade[(s, sym)] = PHASE_SHADES[s][k % len(PHASE_SHADES[s])]
                handles.append(handle(shade[(s, sym)], f"{phases[s]}: {sym}"))
        colors = [shade.get((int(sd), sym), NEITHER)
                  for sym, sd in zip(symbols, sides, strict=True)]
        if (sides == 2).sum() > (li is not None and sides[li] == 2):
            handles.append(handle(NEITHER, "neither side"))
    if li is not None:
        colors[li] = MOVING_LI
        handles.append(handle(MOVING_LI, "moving Li"))
    return colors, handles


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (round(255 * float(v)) for v in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _rotation(structure: StructureData) -> tuple[str, str]:
    """ASE rotation string with z up, looking along the shorter in-plane vector, and the
    name of that vector."""
    cell = np.asarray(structure.cell, float)
    la, lb = np.linalg.norm(cell[0]), np.linalg.norm(cell[1])
    return ("-90x", "b") if lb <= la else ("90z,-90x", "a")


def plot_hop_cell(doc: BarrierDoc, outdir: Path, stem: str) -> list[Path]:
    """Initial state, highest image and final state of ``doc``'s band side by side.

    Returns
    -------
    list[Path]
        The PNG and SVG files.

    Raises
    ------
    ValueError
        When the document stores fewer than two images.
    """
    from ase.visualize.plot import plot_atoms

    from interphase_dft.analysis.plots import _save

    if len(doc.images) < 2:
        raise ValueError(f"{doc.interface} ({doc.mechanism}) stores {len(doc.images)} "
                         "image(s); a picture needs the initial and final states")
    top = highest_image(doc)
    panels = [(0, "initial"), (top, f"highest image {top}"), (len(doc.images) - 1, "final")]
    rotation, along = _rotation(doc.images[0].structure)
    li = moving_li(doc)
    cells = [doc.images[k].structure.to_atoms() for k, _ in panels]
    radii = [RADIUS_SCALE * covalent_radii[cells[0].numbers]] * 3
    bbox = _common_bbox(cells, rotation, radii[0])
    width, height = bbox[2] - bbox[0], bbox[3] - bbox[1]
    inch = min(PANEL_MAX[0] / width, PANEL_MAX[1] / height, INCH_PER_A)  # inches per A
    panel_w, panel_h = max(width * inch, 1.4), max(height * inch, 1.4)
    fig = Figure(figsize=(3 * panel_w + 0.4, panel_h + 1.6))
    axes = fig.subplots(1, 3)
    handles: list[Line2D] = []
    for ax, (k, name), atoms, rad in zip(axes, panels, cells, radii, strict=True):
        colors, handles = _colors(doc.images[k].structure, (doc.phase_a, doc.phase_b), li)
        plot_atoms(atoms, ax, rotation=rotation, colors=colors, radii=rad, show_unit_cell=0,
                   bbox=bbox)
        if li is not None:  # the moving Li once more on top, so no atom hides it
            plot_atoms(atoms[[li]], ax, rotation=rotation, colors=[MOVING_LI],
                       radii=rad[[li]], show_unit_cell=0, bbox=bbox)
        energy = doc.energies[k] if k < len(doc.energies) else doc.images[k].energy
        ax.set_title(f"{name}\nE = {energy:+.3f} eV", fontsize=9)
        ax.set_axis_off()
    status = "saddle" if doc.certified else doc.saddle
    fig.suptitle(f"{doc.interface} {doc.mechanism} hop [{status}]: side view along {along}, "
                 f"{doc.phase_a} bottom, {doc.phase_b} top", fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    tall = panel_h + 1.6  # inches: panel, titles above (1.05), legend below (0.55)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 1.05 / tall, bottom=0.55 / tall,
                        wspace=0.05)
    return _save(fig, outdir, stem)


def _common_bbox(cells: list, rotation: str, radii: np.ndarray) -> np.ndarray:
    """One image-plane box (xlo, ylo, xhi, yhi; Angstrom) that holds every panel's atoms, so
    the panels share a frame and the moving Li's displacement reads across them."""
    from ase.io.utils import PlottingVariables

    boxes = np.array([PlottingVariables(a, rotation=rotation, radii=radii, show_unit_cell=0)
                      .get_bbox() for a in cells])
    return np.array([*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)])
