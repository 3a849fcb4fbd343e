"""Power and energy measurement (DESIGN.md section 5): one sensor backend per file in
``sources/`` registered by name (``registry``), one ``Sampler`` that differences counters and
integrates power readings, ``report`` for a window's figures, ``mllog_power`` for MLPerf's power
events, ``session.JobPower`` for a job's cool-down, baseline and timed window."""
