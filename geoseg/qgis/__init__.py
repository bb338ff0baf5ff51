"""Files for QGIS: the Processing Toolbox script ``geoseg_processing.py`` (run by QGIS, not imported by geoseg)."""

from pathlib import Path

PROCESSING_SCRIPT = Path(__file__).with_name("geoseg_processing.py")
