"""Small helpers every subpackage may use: atomic file writes, safe loading, mixed precision."""
