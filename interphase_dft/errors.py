"""Exception hierarchy. Every error names the problem and the fix."""

from __future__ import annotations


class InterphaseError(Exception):
    """Base class for all errors raised by interphase-dft (CLI exits non-zero with the message)."""


class InputError(InterphaseError, ValueError):
    """Bad user input: unknown phase, impossible Miller index, malformed spec, bad preset."""


class NoMatchError(InterphaseError):
    """No lattice match within the requested limits."""


class StructureError(InterphaseError):
    """A structure is unphysical (overlapping atoms, collapsed cell)."""


class CalculationError(InterphaseError):
    """A calculation failed in a way that needs the user's attention (SCF, NaN forces, setups)."""


class StoreError(InterphaseError):
    """The results store or LaunchPad could not be reached or used."""
