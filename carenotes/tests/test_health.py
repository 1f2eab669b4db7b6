"""The liveness probe answers without credentials."""

from http import HTTPStatus


def test_healthz_answers_200_without_credentials(client):
    response = client.get("/healthz")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}
