"""What the tests share: the app and the emulator served, servers started as processes, the
browser, the command line run as a person runs it, seeded galleries, HTML parsed. Test
modules import from here and never from each other nor from conftest; fixtures come through
tests/conftest.py and the modules here it names as plugins (`pytest_plugins`)."""
