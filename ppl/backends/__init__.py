"""Backend adapters: each module defines ``BACKEND`` with the same small protocol (declared in
``base.py``)."""
