"""/metrics exposes request counts and latencies by route template."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    for _ in range(3):
        client.get("/v2/")
    client.get("/v2/acme/app/unknown")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'moorage_http_requests_total{method="GET",route="/v2/",status="200"} 3.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "/v2/acme/app/unknown" not in text  # raw paths would explode label cardinality
    assert 'moorage_http_request_duration_seconds_count{method="GET",route="/v2/"' in text
