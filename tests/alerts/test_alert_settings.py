"""The alert settings: read from the environment, refused with a message naming the variable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.alerts.rules import DEFAULT_SPIKE
from service.settings import AlertSettings, SettingsError, load_settings

BASE = {"DATABASE_URL": "postgresql://u@h/db"}


def test_defaults():
    alerts = load_settings(BASE).alerts
    assert alerts == AlertSettings()
    assert (alerts.timeout_seconds, alerts.retry_base_seconds, alerts.retry_max_seconds,
            alerts.max_age_seconds, alerts.poll_seconds) == (10, 5, 3600, 86400, 1)
    assert not alerts.allow_private_urls and alerts.operator_url is None
    assert (DEFAULT_SPIKE.factor, DEFAULT_SPIKE.min_usd, DEFAULT_SPIKE.min_hours, DEFAULT_SPIKE.window_hours) == (
        Decimal(5), Decimal(1), 6, 168)


def test_every_variable_is_read():
    settings = load_settings({
        **BASE,
        "SWITCHYARD_ALERT_WEBHOOK_URL": "https://ops.example.com/hooks/switchyard/",
        "SWITCHYARD_ALERT_WEBHOOK_SECRET": "s3cret-s3cret-s3cret",
        "SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS": "true",
        "SWITCHYARD_ALERT_TIMEOUT_SECONDS": "3", "SWITCHYARD_ALERT_RETRY_BASE_SECONDS": "0.5",
        "SWITCHYARD_ALERT_RETRY_MAX_SECONDS": "60", "SWITCHYARD_ALERT_MAX_AGE_SECONDS": "7200",
        "SWITCHYARD_ALERT_POLL_SECONDS": "0.25", "SWITCHYARD_ALERT_SPIKE_FACTOR": "0",
        "SWITCHYARD_ALERT_SPIKE_MIN_USD": "2.50", "SWITCHYARD_ALERT_SPIKE_MIN_HOURS": "12",
        "SWITCHYARD_ALERT_SPIKE_WINDOW_HOURS": "72",
    })
    a = settings.alerts
    assert a.operator_url == "https://ops.example.com/hooks/switchyard/"  # kept as written
    assert a.allow_private_urls and (a.timeout_seconds, a.retry_base_seconds, a.retry_max_seconds,
                                     a.max_age_seconds, a.poll_seconds) == (3, 0.5, 60, 7200, 0.25)
    assert not a.spike.enabled and a.spike.args() == (Decimal(0), Decimal("2.50"), 12, 72)
    # The operator's secret is redacted from logs like every other secret, and never repr'd.
    assert "s3cret-s3cret-s3cret" in settings.secret_values()
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("env", "variable"), [
    ({"SWITCHYARD_ALERT_WEBHOOK_URL": "https://ops.example.com/h"}, "SWITCHYARD_ALERT_WEBHOOK_SECRET"),
    ({"SWITCHYARD_ALERT_WEBHOOK_URL": "https://ops.example.com/h", "SWITCHYARD_ALERT_WEBHOOK_SECRET": "short"},
     "SWITCHYARD_ALERT_WEBHOOK_SECRET"),
    ({"SWITCHYARD_ALERT_WEBHOOK_URL": "ops.example.com", "SWITCHYARD_ALERT_WEBHOOK_SECRET": "x" * 20},
     "SWITCHYARD_ALERT_WEBHOOK_URL"),
    ({"SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS": "maybe"}, "SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS"),
    ({"SWITCHYARD_ALERT_TIMEOUT_SECONDS": "0"}, "SWITCHYARD_ALERT_TIMEOUT_SECONDS"),
    ({"SWITCHYARD_ALERT_MAX_AGE_SECONDS": "soon"}, "SWITCHYARD_ALERT_MAX_AGE_SECONDS"),
    ({"SWITCHYARD_ALERT_SPIKE_FACTOR": "-1"}, "SWITCHYARD_ALERT_SPIKE_FACTOR"),
    ({"SWITCHYARD_ALERT_SPIKE_MIN_USD": "NaN"}, "SWITCHYARD_ALERT_SPIKE_MIN_USD"),
    ({"SWITCHYARD_ALERT_SPIKE_MIN_HOURS": "0"}, "SWITCHYARD_ALERT_SPIKE_MIN_HOURS"),
    ({"SWITCHYARD_ALERT_SPIKE_WINDOW_HOURS": "a week"}, "SWITCHYARD_ALERT_SPIKE_WINDOW_HOURS"),
])
def test_bad_values_name_their_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        load_settings({**BASE, **env})
