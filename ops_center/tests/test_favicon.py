"""/favicon.ico is served, so admin and docs pages load without a 404."""

from ops_center.favicon import FAVICON

ICO_HEADER = b"\x00\x00\x01\x00"


def test_favicon_is_an_icon_cached_for_a_day_without_touching_the_database(client):
    # No django_db mark: any database access in this test raises.
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content == FAVICON.read_bytes()
    assert response.content.startswith(ICO_HEADER)
    assert "max-age=86400" in response["Cache-Control"]


def test_favicon_answers_head_and_refuses_writes(client):
    assert client.head("/favicon.ico").status_code == 200
    assert client.post("/favicon.ico").status_code == 405
