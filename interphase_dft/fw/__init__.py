"""FireWorks layer: the only package that imports ``fireworks``.

- :mod:`interphase_dft.fw.launchpad`  LaunchPad configuration (embedded store, MongoDB), redaction
- :mod:`interphase_dft.fw.tasks`      FireTasks (final import paths; stored in the database)
- :mod:`interphase_dft.fw.workflows`  builders for binding, barrier and campaign workflows
- :mod:`interphase_dft.fw.execution`  submit / run workers / qlaunch / rerun helpers
- :mod:`interphase_dft.fw.worker`     worker process (``python -m interphase_dft.fw.worker``)

Submodules are imported on demand so that importing this package stays cheap.
"""
