"""What a run is: parameters, rules, presets, grid plans, batch rows. No storage, no HTTP."""
