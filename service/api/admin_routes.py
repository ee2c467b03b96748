"""Every /admin handler, for the application factory."""

from __future__ import annotations

from service.api.admin import ADMIN_HANDLERS as _TENANTS_AND_BUDGETS
from service.api.admin_health import HEALTH_HANDLERS
from service.api.admin_keys import KEY_HANDLERS
from service.api.admin_projects import PROJECT_HANDLERS

ADMIN_HANDLERS = [*_TENANTS_AND_BUDGETS, *KEY_HANDLERS, *PROJECT_HANDLERS, *HEALTH_HANDLERS]
