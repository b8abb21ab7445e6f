"""The results file: JSON lines, appended and fsynced, read back torn-line tolerant, with one
writer at a time. No torch."""
