"""The QLoRA trainer program: `python -m zelda_tui.backends.trainer RUN_DIR`.

The only part of zelda-tui that imports torch/transformers/peft/trl/bitsandbytes. It runs the
same way on a laptop and on a rented GPU box, reads only RUN_DIR/run.toml and writes the run
directory contract of zelda_tui.core.runs.
"""
