"""holo-bench behind other frameworks' interfaces, one submodule each (``holo_bench.interop.poli``).

Each submodule needs its framework, an optional extra, and is imported explicitly; this package
imports none of them. Like the rest of the core, they import nothing above it.
"""
