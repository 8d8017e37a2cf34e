from tests.db_fixtures import *  # noqa: F403  (the database fixtures, on both backends)
