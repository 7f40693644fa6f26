"""``edgekit optimize``: from a teacher to the fastest benchmarked student that keeps its quality."""
