"""Work the families of one night share, done once: folders keyed by the content they were made from.

The families trained on one night's training set (XGBoost, Keras, the fusion; several tasks at once in
stack mode) need some of the same results: the data profile, the risk effects. The first task writes
them, the others read them. A folder is complete or absent: it is written in a staging folder and
renamed into place; when two tasks race, the first rename wins and the other's copy is dropped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def content_key(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """``<hash of the columns' values>-<rows>``: equal frames give equal keys."""
    import pandas as pd

    present = [c for c in columns if c in frame]
    digest = int(pd.util.hash_pandas_object(frame[present], index=False).sum()) & (2**64 - 1)
    return f"{digest:016x}-{len(frame)}"


def cached_folder(cache: Path, key: str, write: Callable[[Path], None]) -> Path:
    """``cache/<key>``, made by ``write(staging_folder)`` unless it already exists."""
    done = cache / key
    if not done.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".staging-"))
        try:
            write(staging)
            os.rename(staging, done)
        except OSError:
            if not done.is_dir():  # not a lost race: a real failure
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return done
