"""Stand-in for litellm.proxy._types: SSOUserDefinedValues as LiteLLM defines it
(a TypedDict of the values a custom SSO handler returns)."""

from typing import List, Optional, TypedDict


class SSOUserDefinedValues(TypedDict):
    models: List[str]
    user_id: str
    user_email: Optional[str]
    user_role: Optional[str]
    max_budget: Optional[float]
    budget_duration: Optional[str]
