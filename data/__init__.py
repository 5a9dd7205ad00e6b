"""savg.data: the clip format, clip I/O, the SVGSA24 reader and the procedural spatial dataset."""
