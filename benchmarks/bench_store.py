"""Results-store benchmark: insert N result documents, time the queries the report uses.

Documents are realistic: built with the schema classes (:class:`BindingEnergyDoc` with a
10-atom slab and three sites, :class:`BarrierDoc` with five 11-atom NEB images), half of each
kind, spread over the seven phases and six interfaces. They go into the embedded store
(FireWorks' mongomock with the JSON file of ``MONGOMOCK_SERVERSTORE_FILE``, opened the way
the project opens it: :func:`interphase_dft.fw.launchpad.open_launchpad` and one locked
session) through :meth:`ResultStore.insert` (the path the FireTasks use, with its duplicate
check). Timed:

* ``insert``: all documents through ``ResultStore.insert`` in one session;
* ``save``: writing the store file at the end of the session; ``load``: opening a new
  session on the file (read + parse);
* queries: ``find(kind=...)``, ``find(phase=...)``, ``find(interface=...)``,
  ``get`` (by work key), ``keys()``, ``count()``;
* ``report_load``: what ``interphase-dft report`` does before plotting
  (:func:`interphase_dft.commands.report.store_docs` + :func:`analysis.descriptor.load_docs`).

MongoDB is not installable on this machine; run the same benchmark against a server with
``--launchpad my_launchpad.yaml`` (it writes to its own collection ``interphase_results_bench``,
dropped before and after; the results collection is not touched).

Usage::

    python benchmarks/bench_store.py            # 10,000 documents
    python benchmarks/bench_store.py --quick    # 500 documents
"""

from __future__ import annotations

import copy
import random
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Stopwatch,
    add_summary,
    base_parser,
    new_result,
    resolve_dirs,
    write_result,
)

NAME = "store"
PHASES = ("Al", "LiAl", "LPSC", "Li2S", "Li3P", "LiCl", "P2S5")
INTERFACES = (("LiAl", "LPSC"), ("Al", "LPSC"), ("LiAl", "Li2S"), ("LiAl", "Li3P"),
              ("LiAl", "LiCl"), ("Li2S", "LPSC"))
BENCH_COLLECTION = "interphase_results_bench"


def template_docs() -> tuple[dict[str, Any], dict[str, Any]]:
    """One binding and one barrier document (JSON dicts) built with the schema classes."""
    import numpy as np
    from ase.build import fcc111

    from interphase_dft.calc.presets import preset
    from interphase_dft.schemas import (
        BarrierDoc,
        BindingEnergyDoc,
        NEBImageData,
        ReferenceEnergies,
        SiteResult,
        StructureData,
        structure_hash,
    )

    settings = preset("laptop").model_dump(mode="json")
    slab = fcc111("Al", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = (True, True, False)
    host = StructureData.from_atoms(slab)
    with_li = slab.copy()
    with_li.append("Li")
    with_li.positions[-1] = with_li.positions[-2] + [0.0, 0.0, 2.5]
    refs = ReferenceEnergies(li_atom=-0.06, li_bcc_per_atom=-1.91, cohesive_energy=1.85)
    sites = [SiteResult(label=f"{k}-0", site_kind=k, position=[0.0, 0.0, 12.0],
                        energy=-45.0 - i, binding_energy_atom=-2.1 - 0.1 * i,
                        binding_energy_bcc=-0.25 - 0.1 * i, converged=True,
                        final_structure=StructureData.from_atoms(with_li), li_displacement=0.1)
             for i, k in enumerate(("top", "bridge", "hollow"))]
    binding = BindingEnergyDoc(
        settings=settings, phase="Al", mode="surface",
        surface={"miller": [1, 1, 1], "termination": "Al", "rule": "lowest surface energy"},
        host_energy=-40.0, host_structure=host, references=refs, sites=sites,
        lowest_site="hollow-0", binding_energy_atom=-2.3, binding_energy_bcc=-0.45,
        structure_hash=structure_hash(slab), timings={"host": 120.0, "sites": 600.0},
        force_calls={"host": 12, "sites": 60},
    )
    images = []
    for i in range(5):
        im = with_li.copy()
        im.positions[-1] += [0.4 * i, 0.0, -0.3 * i]
        images.append(NEBImageData(energy=-45.0 + 0.1 * np.sin(np.pi * i / 4), fmax=0.04,
                                   structure=StructureData.from_atoms(im)))
    energies = [im.energy - images[0].energy for im in images]
    barrier = BarrierDoc(
        settings=settings, interface="LiAl|LPSC", phase_a="LiAl", phase_b="LPSC",
        interface_meta={"n_atoms": 11, "strain": 0.01}, images=images, energies=energies,
        path_coordinate=[0.5 * i for i in range(5)],
        spline={"x": [0.1 * i for i in range(20)], "y": [0.005 * i for i in range(20)]},
        barrier_forward=max(energies), barrier_reverse=max(energies) - energies[-1],
        reaction_energy=energies[-1], converged=True, fmax_final=0.04, climbing_image=2,
        saddle="saddle", mechanism="vacancy", stage="ml+dft", ml_barrier=0.08,
        structure_hash=structure_hash(images[0].structure.to_atoms()),
        timings={"endpoints": 200.0, "dft_neb": 900.0}, force_calls={"dft_neb": 45},
    )
    return binding.model_dump(mode="json"), barrier.model_dump(mode="json")


def make_docs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` documents: alternating binding/barrier copies with varied keys and numbers."""
    rng = random.Random(seed)
    binding, barrier = template_docs()
    out = []
    for i in range(n):
        if i % 2 == 0:
            d = copy.deepcopy(binding)
            d["phase"] = PHASES[(i // 2) % len(PHASES)]
            d["mode"] = "surface" if (i // 2) % 3 else "bulk"
            d["binding_energy_atom"] = -1.0 - 2.0 * rng.random()
            d["binding_energy_bcc"] = d["binding_energy_atom"] + 1.6
        else:
            d = copy.deepcopy(barrier)
            a, b = INTERFACES[(i // 2) % len(INTERFACES)]
            d.update(interface=f"{a}|{b}", phase_a=a, phase_b=b)
            d["barrier_forward"] = 0.1 + 0.8 * rng.random()
        d["uid"] = uuid.uuid4().hex
        d["work_key"] = f"{uuid.uuid4().hex}{i:06d}"
        d["created"] = f"2026-01-01T00:00:{i % 60:02d}+00:00#{i:06d}"
        out.append(d)
    return out


def _time(fn: Any, repeat: int = 3) -> dict[str, Any]:
    times, value = [], None
    for _ in range(repeat):
        with Stopwatch() as sw:
            value = fn()
        times.append(sw.seconds)
    n = len(value) if isinstance(value, list | set) else value
    return {"seconds": times, "median_s": statistics.median(times),
            "result_size": n if isinstance(n, int) else None}


def run(n_docs: int, launchpad_file: str | None, workdir: Path) -> dict[str, Any]:
    """Insert ``n_docs`` documents and time everything; return the raw measurements."""
    from interphase_dft.analysis.descriptor import load_docs
    from interphase_dft.commands.report import store_docs
    from interphase_dft.fw.launchpad import (
        init_embedded,
        lp_session,
        open_launchpad,
        resolve_launchpad,
    )
    from interphase_dft.store import COLLECTION, ResultStore

    m: dict[str, Any] = {"n_docs": n_docs}
    with Stopwatch() as sw:
        docs = make_docs(n_docs)
    m["build_docs_s"] = sw.seconds
    if launchpad_file:
        config = resolve_launchpad(launchpad_file)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="store-", dir=workdir))
        config = init_embedded(tmp / ".interphase")
    m["store"] = config.kind
    # a real MongoDB gets its own scratch collection (never the results collection)
    coll = COLLECTION if config.kind == "embedded" else BENCH_COLLECTION
    m["collection"] = coll
    lp = open_launchpad(config)
    with lp_session(lp) as s:  # fresh collection
        s.db[coll].drop()
    with Stopwatch() as total:
        with lp_session(lp) as s:
            store = ResultStore(s.db, coll)
            store.ensure_indexes()
            per: list[float] = []
            with Stopwatch() as ins:
                for d in docs:
                    with Stopwatch() as one:
                        store.insert(d)
                    per.append(one.seconds)
            save = Stopwatch().__enter__()
        save.__exit__()
    m["insert_s"] = ins.seconds
    m["insert_per_doc_ms"] = {
        "first_100_mean": 1e3 * statistics.fmean(per[:100]),
        "last_100_mean": 1e3 * statistics.fmean(per[-100:]),
        "median": 1e3 * statistics.median(per),
    }
    m["save_s"] = save.seconds if config.kind == "embedded" else 0.0
    m["insert_session_total_s"] = total.seconds
    if config.kind == "embedded":
        m["store_file_mb"] = Path(config.store_file).stat().st_size / 1e6
        with Stopwatch() as sw:
            ctx = lp_session(lp)
            s = ctx.__enter__()
        m["load_s"] = sw.seconds
        q = _queries(ResultStore(s.db, coll), docs)
        with Stopwatch() as sw:
            ctx.__exit__(None, None, None)
        m["save_unchanged_s"] = sw.seconds
    else:
        with lp_session(lp) as s:
            q = _queries(ResultStore(s.db, coll), docs)
    m["queries"] = q

    def report_load() -> int:
        if config.kind == "embedded":
            raw = store_docs(str(config.yaml_path))
        else:
            with lp_session(lp) as s:
                raw = ResultStore(s.db, coll).find()
        loaded = load_docs(raw)
        return len(loaded.binding) + len(loaded.barriers)

    m["report_load"] = _time(report_load, repeat=2)
    if config.kind != "embedded":
        with lp_session(lp) as s:
            s.db[coll].drop()
    return m


def _queries(store: Any, docs: list[dict[str, Any]]) -> dict[str, Any]:
    key = docs[len(docs) // 2]["work_key"]
    return {
        "find_kind_binding": _time(lambda: store.find(kind="binding")),
        "find_kind_barrier": _time(lambda: store.find(kind="barrier")),
        "find_phase_LPSC": _time(lambda: store.find(phase="LPSC")),
        "find_binding_phase_Al": _time(lambda: store.find(kind="binding", phase="Al")),
        "find_interface": _time(lambda: store.find(interface="LiAl|LPSC")),
        "find_all": _time(lambda: store.find()),
        "get_by_work_key": _time(lambda: [store.get(key)], repeat=5),
        "keys": _time(lambda: store.keys()),
        "count": _time(lambda: store.count(), repeat=5),
    }


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--n-docs", type=int, default=None,
                   help="number of documents (default 10000, --quick 500)")
    p.add_argument("--launchpad", default=None, metavar="FILE",
                   help="my_launchpad.yaml of a MongoDB (scratch database) instead of the "
                        "embedded store")
    args = p.parse_args(argv)
    outdir, workdir = resolve_dirs(args, NAME)
    n = args.n_docs or (500 if args.quick else 10000)
    result = new_result(NAME, quick=args.quick, settings={
        "n_docs": n, "store": "mongodb" if args.launchpad else "embedded (mongomock file)",
        "doc_mix": "50% BindingEnergyDoc (10-atom slab, 3 sites), 50% BarrierDoc "
                   "(5 images of 11 atoms)"})
    m = run(n, args.launchpad, workdir)
    result["measurements"] = m
    q = m["queries"]
    add_summary(result, "documents inserted (ResultStore.insert)", n, "docs")
    add_summary(result, "insert, total", m["insert_s"], "s")
    add_summary(result, "insert per doc, last 100", m["insert_per_doc_ms"]["last_100_mean"], "ms")
    if m["store"] == "embedded":
        add_summary(result, "store file size", m["store_file_mb"], "MB")
        add_summary(result, "file save (end of session)", m["save_s"], "s")
        add_summary(result, "file load (open session)", m["load_s"], "s")
    add_summary(result, "find(kind='binding')", q["find_kind_binding"]["median_s"], "s")
    add_summary(result, "find(phase='LPSC')", q["find_phase_LPSC"]["median_s"], "s")
    add_summary(result, "get_by_work_key", q["get_by_work_key"]["median_s"], "s")
    add_summary(result, "report load (store_docs + load_docs)",
                m["report_load"]["median_s"], "s")
    result["notes"] += [
        "Embedded store = mongomock in memory + one JSON file: every session reads and writes "
        "the whole file, and mongomock scans the collection for every query (indexes are not "
        "used), so ResultStore.insert (which looks up the work key first) grows linearly "
        "with the collection.",
        "MongoDB: not available on this machine (no server can be installed here). Run "
        "`python benchmarks/bench_store.py --launchpad my_launchpad.yaml` against a scratch "
        "database to measure it (it uses its own collection interphase_results_bench, "
        "dropped before and after; the results collection is never touched).",
    ]
    if args.launchpad:
        result["notes"] = result["notes"][:1]
    result["status"] = "complete"
    path = write_result(result, outdir)
    print(f"{NAME}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
