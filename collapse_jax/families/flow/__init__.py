"""Flow matching and diffusion (``family.py``: the family; the rest its parts)."""
