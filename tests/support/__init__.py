"""What several test modules share and that is not a test: helpers, data and stand-ins (fixtures are in conftest.py).

Test modules import from here, never from one another, so each test file can run alone and in any order."""
