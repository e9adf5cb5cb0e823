"""What the tests share that is not a fixture: servers started as processes, the browser,
the command line run as a person runs it, seeded galleries, HTML parsed. Test modules import
from here and never from each other; fixtures come through tests/conftest.py."""
