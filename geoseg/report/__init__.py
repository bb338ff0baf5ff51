"""Reports: QGIS styles, preview pictures and class areas of finished outputs."""
