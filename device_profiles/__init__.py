"""The device profiles shipped with mlperf-edge, one YAML file per device class. They travel
inside the package, so a device installed from the wheel has them; a lab's own folder
(``--profiles-dir`` / ``MLPERF_PROFILES_DIR``) adds profiles or overrides these by name."""
