"""Alerts: budget thresholds and spend spikes, recorded in an outbox with the spend that caused
them (see migrations/versions/0006_alerts.py) and delivered to signed webhooks at least once."""
