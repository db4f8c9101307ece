"""The model families. Each module (or package's ``family`` module) defines ``FAMILY``.

``collapse_jax.experiments`` is the table that names them; nothing imports a family by a name
built from a config string.
"""
