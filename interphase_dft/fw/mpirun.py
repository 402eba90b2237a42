"""Run one FireTask's recipe on all MPI ranks.

``<mpi launcher> python -m interphase_dft.fw.mpirun TASK.json OUT.json``

Started by :func:`interphase_dft.fw.tasks._compute` when a job has several MPI tasks. Every
rank loads the FireTask from ``TASK`` (JSON) and calls ``task.recipe(workdir)`` (GPAW
parallelises over the ranks); rank 0 writes the document to ``OUT``. No database access here:
the serial FireTask that started this stores the result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    task_file, out_file = (Path(a) for a in (argv or sys.argv[1:]))
    from ase.parallel import world
    from fireworks.utilities.fw_serializers import load_object

    task = load_object(json.loads(task_file.read_text()))
    doc = task.recipe(task_file.parent)
    if world.rank == 0:
        data = doc.model_dump(mode="json") if hasattr(doc, "model_dump") else dict(doc)
        tmp = out_file.with_name(f".{out_file.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, out_file)
    world.barrier()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
