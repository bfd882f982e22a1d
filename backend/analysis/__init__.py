"""After (and during) a run: the deployment analysis, the report, the diagnosis and its evidence,
statistics and charts, imported field traces and replay."""
