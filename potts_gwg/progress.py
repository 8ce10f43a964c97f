"""Progress bars for the long parts of reading and weighting big alignments (tqdm, on stderr).

``enabled``: True shows the bar, False never, None only when stderr is a terminal, so that
logs and pipes stay clean.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool | None) -> tqdm:
    """A tqdm bar (usable as a context manager); a silent one when not enabled."""
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                disable=not show, leave=False, mininterval=0.5)
