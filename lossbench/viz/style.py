"""How each compared group looks: its colour, line style and marker, kept in every figure.

The first label key (the first swept or differing key, or --by) picks the hue, the second the line
style, the third the marker, so that "relu, depth 10" is the relu colour drawn dotted everywhere.
`tests/test_styles.py` reads them back from the drawn lines over generated sets of configs.
"""

from __future__ import annotations

import numpy as np

# Okabe & Ito (2008), ordered so the first colours are the most distinct on white; colour-blind safe.
# Their yellow is left out: a thin yellow line on white is barely visible. The closest pair left
# (blue and sky blue) is 26 apart in CIELAB, far above the ~2 a reader can just tell apart.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def styles(values: list[dict], keys: list[str]) -> list[tuple[str, str, str | None]]:
    """(colour, line style, marker) per group, in order: the first label key's value picks the hue,
    the second's the line style, the third's the marker, so that "relu, depth 10" is the relu colour
    drawn dotted in every figure. Keys past the first with more values than that (or a fourth key)
    share style and marker between them; where even that cannot tell every group apart (more
    values of the first key than hues), the groups take hue, then style, then marker in turn."""
    marks: list[str | None] = [None, *MARKERS]
    index = [list(dict.fromkeys(v[k] for v in values)) for k in keys]
    n = [len(ix) for ix in index]
    at = [[ix.index(v[k]) for k, ix in zip(keys, index)] for v in values]
    simple = len(n) <= 3 and all(m <= c for m, c in zip(n[1:], (len(LINESTYLES), len(marks))))
    out = []
    for a in at if keys and n[0] <= len(PALETTE) else []:
        if simple:
            style, mark = (a[1:] + [0, 0])[:2]
        else:  # the later keys' values counted together, styles first
            rest = int(np.ravel_multi_index(a[1:], n[1:])) if len(a) > 1 else 0
            style, mark = rest % len(LINESTYLES), rest // len(LINESTYLES)
        out.append((PALETTE[a[0]], LINESTYLES[style], marks[mark % len(marks)]))
    if out and len(set(out)) == len(out):
        return out
    n_hues, n_styles = len(PALETTE), len(LINESTYLES)
    return [
        (
            PALETTE[j % n_hues],
            LINESTYLES[(j // n_hues) % n_styles],
            marks[(j // (n_hues * n_styles)) % len(marks)],
        )
        for j in range(len(values))
    ]
