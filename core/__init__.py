"""savg.core: what every stage shares and nothing stage-specific: model folders (save/load, fingerprints),
trainer helpers, and the machine probe (dtype and threads by what the machine measures)."""
