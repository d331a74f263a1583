"""Ascend backend tests run the emulation with rule 17 (cross-pipe hazards) as an error, not a warning."""
import os

os.environ.setdefault("TILEC_ASCEND_SYNC", "error")
