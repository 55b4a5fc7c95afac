"""The window API's implementation: windows, triggers, assigners and evictors.

Users import these classes from ``flinklet.datastream.window`` (PyFlink's module), which
re-exports them; the window operator itself is in ``flinklet._private.exec.windowing``.
"""

# These modules import ``flinklet.datastream.state``, whose package imports
# ``flinklet.datastream.window``, which imports these modules: load the public package
# first, so that importing one of these modules first works too.
import flinklet.datastream  # noqa: F401
