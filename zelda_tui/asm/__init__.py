"""65816 code: extraction from answers and the Asar verdict vocabulary (code), the built-in
pre-check (precheck), the one comment stripper and the normalised match (normalise).
Pure like core: no UI, network or torch (the Asar process lives in backends/asar)."""
