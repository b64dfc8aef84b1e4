"""Logs as JSON for collectors, and per-route HTTP latency in /metrics (issue 15 #7)."""

from __future__ import annotations

import json
import logging

from server_harness import ProcessServer, ThreadedServer, b2b_order, metric, sandbox_settings, scrape

from regua.server.logs import JsonFormatter, MaskingFilter

CPF = "529.982.247-25"


def test_a_json_log_line_is_one_masked_object():
    record = logging.LogRecord("regua.test", logging.ERROR, __file__, 1, "lookup failed for %s", (CPF,), None)
    assert MaskingFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "regua.test"
    assert CPF not in entry["message"] and entry["message"].endswith("25")
    assert entry["time"].endswith("+00:00")


def test_the_server_writes_json_logs_when_asked(tmp_path):
    with ProcessServer(tmp_path, env={"REGUA_LOG_FORMAT": "json", "REGUA_SERVER__ACCESS_LOG": "true"}) as server:
        with server.client() as client:
            assert client.get(f"/decisions?document={CPF}").status_code == 200
    lines = [line for line in server.logs().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON, the banner aside (stdout)
    assert any(e["logger"] == "regua.policies" for e in entries)
    assert CPF not in server.logs() and "52998224725" not in server.logs()


def test_metrics_time_requests_by_route_template_and_status(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        for _ in range(3):
            assert client.post("/evaluate/credito_b2b", json={"input": b2b_order()}).status_code == 200
        assert client.get("/decisions/01E9PSPS800000000000000000").status_code == 404
        assert client.get("/decisions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        samples = scrape(client)
    count = "regua_http_request_seconds_count"
    assert metric(samples, count, method="POST", route="/evaluate/{policy}", status="200") == 3
    assert metric(samples, count, method="GET", route="/decisions/{decision_id}", status="404") == 1
    assert metric(samples, count, method="GET", route="/decisions", status="401") == 1
    assert not [labels for (name, labels) in samples if name == count and "01E9" in str(labels)]


def test_observing_decisions_counts_as_prometheus_clients_own_counters_and_histogram():
    """Metrics.observe updates the children's values directly (server.metrics._adder): the
    exposition is the one the public inc()/observe() give, bucket boundaries included."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from regua.engine.decision import ConnectorCall
    from regua.server.metrics import LATENCY_BUCKETS, Metrics

    calls = [ConnectorCall("bureau.serasa", ("1",), "ok", 1.0, cached=True),
             ConnectorCall("portfolio.customer", ("1",), "failed", 1.0, "CONNECTOR_TIMEOUT")]
    observed = [0.0, 0.0005, 0.00051, 0.003, 5.0, 7.5, *LATENCY_BUCKETS]
    metrics = Metrics()
    reference = CollectorRegistry()
    decisions = Counter("regua_decisions", "Decisions made, by policy and outcome", ["policy", "outcome"],
                        registry=reference)
    latency = Histogram("regua_evaluation_seconds", "Time to evaluate one request, by policy", ["policy"],
                        buckets=LATENCY_BUCKETS, registry=reference)
    connector_calls = Counter("regua_connector_calls", "Connector calls, by connector and status",
                              ["connector", "status"], registry=reference)
    for k, seconds in enumerate(observed):
        outcome = ("approve", "review")[k % 2]
        metrics.observe("credito_b2b", outcome, seconds, calls)
        decisions.labels("credito_b2b", outcome).inc()
        latency.labels("credito_b2b").observe(seconds)
        for call in calls:
            connector_calls.labels(call.connector, call.status).inc()

    def lines(registry, prefixes):
        return sorted(line for line in generate_latest(registry).decode().splitlines()
                      if line.startswith(prefixes))

    requests = Histogram("regua_http_request_seconds", "Time from request to the end of the response, by method, "
                         "route and status", ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=reference)
    for seconds in observed:
        metrics.observe_request("POST", "/evaluate", 200, seconds)
        requests.labels("POST", "/evaluate", "200").observe(seconds)
    metrics.observe_request("GET", "/health", 503, 0.002)
    requests.labels("GET", "/health", "503").observe(0.002)

    prefixes = ("regua_decisions_total", "regua_evaluation_seconds_", "regua_connector_calls_total",
                "regua_http_request_seconds_")
    assert lines(metrics.registry, prefixes) == lines(reference, prefixes)
    assert 'regua_evaluation_seconds_bucket{le="0.0005",policy="credito_b2b"} 3.0' in lines(metrics.registry, prefixes)
    exposition = generate_latest(metrics.registry).decode()
    assert f'regua_connector_errors_total{{code="CONNECTOR_TIMEOUT",connector="portfolio.customer"}} ' \
           f'{float(len(observed))}' in exposition
    assert f'regua_connector_cache_hits_total{{connector="bureau.serasa"}} {float(len(observed))}' in exposition
