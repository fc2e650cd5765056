from __future__ import annotations


def resolve_dotted(path: str):
    """What a dotted callback path names, imported the way Airflow's triggerer and executors do."""
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)
