import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_thread):  # every analysis test runs single-threaded (tests/conftest.py)
    yield
