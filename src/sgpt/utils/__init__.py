"""Small helpers shared by several concerns (atomic writes)."""
