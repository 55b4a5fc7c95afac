"""Load ``flinklet.datastream`` before the state backends.

The package's ``__init__`` imports the engine, which imports the state backends, which import
``flinklet.datastream.state``; entering that cycle at a backend module fails with a
half-initialised module. User programs always enter at ``flinklet.datastream``; so do these
tests.
"""

import flinklet.datastream  # noqa: F401
