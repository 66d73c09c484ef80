"""Offers screen (not built yet: the GPU offer browser issue fills it)."""

from .planned import PlannedScreen


class OffersScreen(PlannedScreen):
    SCREEN_TITLE = "Offers"
    PLAN = """\
# Offers — not built yet

This screen will hold **GPU offers from Vast.ai, Vultr and GCP in one table**:

- a filter line in the `vastai` query grammar, e.g. `gpu_name=A100 gpu_ram>=80 dph_total<2.5`
- per offer: does the model fit in VRAM for the chosen seq len, estimated hours and dollars for the chosen mix
- `l` launches the selected offer after a confirm dialog with $/h, estimated total and budget left

Headless today: nothing yet (`zelda-tui offers search` arrives with this screen).
"""
