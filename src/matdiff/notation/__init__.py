"""Back to matrix notation: raising the index graph, factoring sums, rendering."""
