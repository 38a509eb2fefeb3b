"""Backend adapters: each module defines ``BACKEND`` with the same small protocol (see DESIGN.md)."""
