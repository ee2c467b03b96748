"""Settings from the environment: each bad value stops the process with a message naming it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.settings import SettingsError, XpayKey, load_settings


def test_xpay_key_pools_take_each_keys_limits_or_the_defaults():
    s = load_settings({"XPAY_API_KEYS": "xpay_sk_a:30:5, xpay_sk_b , xpay_sk_c:10", "XPAY_RPM": "40",
                       "XPAY_CONCURRENCY": "4"})
    assert s.xpay_keys() == (XpayKey("xpay_sk_a", 30, 5), XpayKey("xpay_sk_b", 40, 4), XpayKey("xpay_sk_c", 10, 4))
    assert "xpay" in s.enabled_front_ends()
    assert {"xpay_sk_a", "xpay_sk_b", "xpay_sk_c"} <= set(s.secret_values())  # redacted from logs
    single = load_settings({"XPAY_API_KEY": "xpay_sk_only"})
    assert single.xpay_keys() == (XpayKey("xpay_sk_only", 60, 10),)
    assert load_settings({}).xpay_keys() == ()


@pytest.mark.parametrize("value", [" , ", "a:b", "a:1:2:3", ":5", "a:0"])
def test_bad_xpay_key_pools_are_refused_naming_the_variable(value):
    with pytest.raises(SettingsError, match="XPAY_API_KEYS"):
        load_settings({"XPAY_API_KEYS": value})


def test_orthogonal_price_cents_unit_is_one_of_the_two_documented_readings():
    assert load_settings({"ORTHOGONAL_PRICE_CENTS_UNIT": "100000"}).orthogonal_price_cents_unit == Decimal(100000)
    with pytest.raises(SettingsError, match="ORTHOGONAL_PRICE_CENTS_UNIT"):
        load_settings({"ORTHOGONAL_PRICE_CENTS_UNIT": "1000"})


def test_metrics_token_and_port_are_read_and_checked():
    s = load_settings({"SWITCHYARD_METRICS_TOKEN": "scrape-token-0123456789", "SWITCHYARD_METRICS_PORT": "9464"})
    assert s.metrics_token == "scrape-token-0123456789"
    assert s.metrics_port == 9464
    assert "scrape-token-0123456789" in s.secret_values()  # redacted from logs
    assert "scrape-token" not in repr(s)
    unset = load_settings({})
    assert (unset.metrics_token, unset.metrics_port) == (None, None)


@pytest.mark.parametrize(("var", "value"), [("SWITCHYARD_METRICS_TOKEN", "short"),
                                            ("SWITCHYARD_METRICS_PORT", "0"),
                                            ("SWITCHYARD_METRICS_PORT", "65536"),
                                            ("SWITCHYARD_METRICS_PORT", "metrics")])
def test_bad_metrics_settings_are_refused_naming_the_variable(var, value):
    with pytest.raises(SettingsError, match=var):
        load_settings({var: value})


def test_the_collector_thresholds_default_to_the_measured_ones_and_are_checked():
    assert load_settings({}).gc_threshold == (10_000, 50, 100)
    assert load_settings({"SWITCHYARD_GC_THRESHOLD": "700,10,10"}).gc_threshold == (700, 10, 10)
    for bad in ("700,10", "a,b,c", "0,10,10", "700,10,10,10"):  # empty is unset, as every variable
        with pytest.raises(SettingsError, match="SWITCHYARD_GC_THRESHOLD"):
            load_settings({"SWITCHYARD_GC_THRESHOLD": bad})


def test_the_serving_factory_applies_the_thresholds(monkeypatch):
    import gc

    from service import app as app_module

    applied: list[tuple[int, int, int]] = []
    monkeypatch.setattr(app_module, "tune_gc", applied.append)
    monkeypatch.setattr(app_module, "hold_stop_signals", lambda: None)
    monkeypatch.setenv("SWITCHYARD_GC_THRESHOLD", "5000,20,30")
    before = gc.get_threshold()
    app_module.app_from_env()
    assert applied == [(5000, 20, 30)]
    assert gc.get_threshold() == before  # the test process keeps its own
