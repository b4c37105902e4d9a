"""Stable styles: each balancer keeps one colour, hatch, marker and line style in every figure of
a results folder and in ``lblab compare --plot`` (pure: no I/O, no matplotlib).

A style is a *slot* k: colour ``PALETTE[k % 8]`` (Okabe & Ito, distinguishable with every common
colour-vision deficiency), hatch ``HATCHES[k // 8]``, so two balancers never share colour and
hatch until 8 x 8 = 64 balancers (more than a spec allows: 64 is the backend limit, balancers are
far fewer in practice; past 64 the slots wrap). The mapping is recorded in the results folder as
``styles.json`` (``experiments.figures`` reads and writes it): ``{"v": 1, "styles": {name:
{"slot", "color", "hatch", "marker", "linestyle"}}}``. A balancer already in the mapping keeps
its slot; a new one takes the lowest free slot, in the order the names are given.
"""

STYLES_VERSION = 1

# Okabe & Ito (2008); black last, so it is used only from the 8th balancer on.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p")
LINESTYLES = ("-", "--", ":", "-.")
SLOTS = len(PALETTE) * len(HATCHES)


def style_of_slot(slot):
    """Return the style dict of one slot (see the module docstring)."""
    k = slot % SLOTS
    return {"slot": slot, "color": PALETTE[k % len(PALETTE)],
            "hatch": HATCHES[k // len(PALETTE)], "marker": MARKERS[k % len(MARKERS)],
            "linestyle": LINESTYLES[(k // len(PALETTE)) % len(LINESTYLES)]}


def assign_styles(names, existing=None):
    """Return the style of every name, keeping the slots of an existing mapping.

    Args:
        names (iterable[str]): balancer names, in the order they first appear.
        existing (dict|None): a previous mapping ``{name: {"slot": int, ...}}`` (the
            ``styles`` of a ``styles.json``); entries without a valid slot are assigned anew.
    Returns:
        dict: ``{name: style}`` for every name of ``existing`` and ``names``, existing names
        first (their order kept), new names after in the given order, each on the lowest free
        slot.
    """
    out = {}
    used = set()
    for name, style in (existing or {}).items():
        slot = style.get("slot") if isinstance(style, dict) else None
        if isinstance(slot, int) and not isinstance(slot, bool) and slot >= 0 \
                and slot not in used:
            out[name] = style_of_slot(slot)
            used.add(slot)
    free = 0
    for name in names:
        if name in out:
            continue
        while free in used:
            free += 1
        out[name] = style_of_slot(free)
        used.add(free)
    return out


def styles_document(mapping):
    """The JSON document of ``styles.json`` for a mapping from ``assign_styles``."""
    return {"v": STYLES_VERSION, "styles": mapping}


def mapping_of(document):
    """The mapping of a ``styles.json`` document; {} for anything that is not one (a damaged
    or foreign file is replaced, not trusted)."""
    if not isinstance(document, dict) or document.get("v") != STYLES_VERSION:
        return {}
    styles = document.get("styles")
    return styles if isinstance(styles, dict) else {}
