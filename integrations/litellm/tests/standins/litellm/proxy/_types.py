"""Stand-in for litellm.proxy._types: SSOUserDefinedValues (a TypedDict of
the values a custom SSO handler returns) and LitellmUserRoles (a str enum),
as LiteLLM defines them."""

import enum
from typing import List, Optional, TypedDict


class LitellmUserRoles(str, enum.Enum):
    PROXY_ADMIN = "proxy_admin"
    PROXY_ADMIN_VIEW_ONLY = "proxy_admin_viewer"
    ORG_ADMIN = "org_admin"
    INTERNAL_USER = "internal_user"
    INTERNAL_USER_VIEW_ONLY = "internal_user_viewer"
    TEAM = "team"
    CUSTOMER = "customer"

    def __str__(self) -> str:
        return str(self.value)


class SSOUserDefinedValues(TypedDict):
    models: List[str]
    user_id: str
    user_email: Optional[str]
    user_role: Optional[str]
    max_budget: Optional[float]
    budget_duration: Optional[str]
