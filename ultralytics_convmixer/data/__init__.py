"""Tools for data: the generated, offline shapes datasets for every Ultralytics task."""
