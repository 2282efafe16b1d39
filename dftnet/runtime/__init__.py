"""What every job runs on, and nothing paper-specific: atomic writes (``atomic``), checkpoints
read without executing code (``safeload``), pinned threads and devices (``numerics``), workers
that die with their parent (``procs``), one-line errors (``errors``), and resumable CSV logs
(``csvlog``). Imports nothing else of ``dftnet`` (tests/test_structure.py)."""
