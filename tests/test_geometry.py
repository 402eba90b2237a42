"""The minimum-image rule (interphase_dft.geometry)."""

import numpy as np
import pytest
from ase import Atoms

from interphase_dft.geometry import (
    IN_PLANE,
    displacements,
    distances_from,
    mic_distance,
    mic_vectors,
    nearest_image,
)


def _cell(pbc) -> Atoms:
    return Atoms("H2", positions=[[0.5, 0.5, 0.5], [9.5, 0.5, 9.5]], cell=[10, 10, 10], pbc=pbc)


def test_mic_vectors_wrap_only_periodic_directions():
    atoms = _cell([True, True, False])
    v = mic_vectors(atoms, [9.0, 0.0, 9.0])
    assert v == pytest.approx([-1.0, 0.0, 9.0])
    assert mic_vectors(atoms, [[9.0, 0.0, 9.0]]).shape == (1, 3)
    grid = mic_vectors(atoms, np.full((2, 4, 3), 9.0))  # e.g. every pair of two site lists
    assert grid.shape == (2, 4, 3) and grid[1, 3] == pytest.approx([-1.0, -1.0, 9.0])
    assert mic_vectors(atoms, [9.0, 0.0, 9.0], mic=False) == pytest.approx([9.0, 0.0, 9.0])


def test_mic_distance_and_displacements():
    full = _cell(True)
    assert mic_distance(full, full.positions[0], full.positions[1]) == pytest.approx(2 ** 0.5)
    assert mic_distance(full, full.positions[0], full.positions[1], mic=False) == pytest.approx(
        np.linalg.norm([9.0, 0.0, 9.0]))
    moved = full.copy()
    moved.positions[1] += [1.0, 0.0, 0.0]  # 9.5 -> 10.5, i.e. 0.5 wrapped: a 1 A move
    assert displacements(full, moved) == pytest.approx([0.0, 1.0])
    isolated = _cell(False)
    assert mic_distance(isolated, [0.5, 0.5, 0.5], [9.5, 0.5, 9.5]) == pytest.approx(
        np.linalg.norm([9.0, 0.0, 9.0]))


def test_distances_from_in_plane_ignores_the_vacuum_direction():
    full = _cell(True)
    point = full.positions[0]
    assert distances_from(full, point, full.positions) == pytest.approx([0.0, 2 ** 0.5])
    in_plane = distances_from(full, point, full.positions, IN_PLANE)
    assert in_plane == pytest.approx([0.0, np.hypot(1.0, 9.0)])


def test_nearest_image_crosses_the_cell_boundary_only_along_periodic_directions():
    slab = _cell([True, True, False])
    origin, point = slab.positions
    image = nearest_image(slab, origin, point)
    assert image == pytest.approx([-0.5, 0.5, 9.5])  # x wrapped, z (vacuum) kept
    assert np.linalg.norm(image - origin) == pytest.approx(np.hypot(1.0, 9.0))
    bulk = _cell(True)
    assert nearest_image(bulk, origin, point) == pytest.approx([-0.5, 0.5, -0.5])
    assert nearest_image(_cell(False), origin, point) == pytest.approx(point)
