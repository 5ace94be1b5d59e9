"""The lecture's diagnostics: per-layer statistics on a probe batch (`probe`), recorded while
training into a sidecar (`recording`), reported by `bnnames diagnose` (`report`) and drawn
(`plots`, matplotlib, optional)."""
