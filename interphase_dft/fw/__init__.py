"""FireWorks layer: the only package that imports ``fireworks``.

- :mod:`interphase_dft.fw.launchpad`  LaunchPad configuration (embedded store, MongoDB)
- :mod:`interphase_dft.fw.embedded`   the embedded file store: locked transactions, backups, restore
- :mod:`interphase_dft.fw.heartbeat`  worker heartbeats (ping interval) and lost-run detection
- :mod:`interphase_dft.fw.tasks`      FireTasks (final import paths; stored in the database)
- :mod:`interphase_dft.fw.workflows`  fireworks from a campaign's work items; submission
- :mod:`interphase_dft.fw.status`     firework states, status rows, lost/fizzled reruns
- :mod:`interphase_dft.fw.pool`       the local worker pool (``run``, ``campaign``)
- :mod:`interphase_dft.fw.queue`      Slurm: queue adapter, qlaunch, keeping jobs busy
- :mod:`interphase_dft.fw.worker`     worker process (``python -m interphase_dft.fw.worker``)
- :mod:`interphase_dft.fw.mpirun`     a task's recipe on all MPI ranks

Submodules are imported on demand so that importing this package stays cheap.
"""
