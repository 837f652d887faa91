from sqlalchemy import inspect


def test_schema_has_tables(clean_db):
    names = set(inspect(clean_db).get_table_names())
    assert {"frames", "face_events", "lessons", "consents", "api_keys"} <= names


def test_redis_round_trip(redis_client):
    redis_client.set("k", b"v")
    assert redis_client.get("k") == b"v"
