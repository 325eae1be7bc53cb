"""The Ultralytics integration: the only code that reads, wraps or relies on Ultralytics' internals.

A new Ultralytics release is fixed here (``docs/design.md``, "Layout"); ``registration`` holds every patch.
"""
