"""SageMaker real-time inference on-demand prices, so every endpoint shows what it would cost on AWS.

Prices are USD per instance-hour in us-east-1 as listed on the AWS SageMaker pricing page
(checked for this table on PRICES_AS_OF). They drift; the UI says the date and region.
"""

from __future__ import annotations

PRICES_AS_OF = "2026-11-01"
PRICE_REGION = "us-east-1"

HOURLY_USD = {
    "ml.t2.medium": 0.056,
    "ml.t2.large": 0.111,
    "ml.t2.xlarge": 0.223,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.230,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.r5.large": 0.151,
    "ml.r5.xlarge": 0.302,
    "ml.g4dn.xlarge": 0.736,
}

INSTANCE_TYPES = list(HOURLY_USD)
TRAINING_INSTANCE_TYPES = ["ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.c5.xlarge", "ml.c5.2xlarge"]


def hourly_price(instance_type: str) -> float | None:
    return HOURLY_USD.get(instance_type)


def estimated_cost(instance_type: str, instance_count: int, seconds: float) -> float | None:
    """What the endpoint would have cost on SageMaker for ``seconds`` of uptime (None if the type is unknown)."""
    price = hourly_price(instance_type)
    if price is None:
        return None
    return price * max(1, instance_count) * max(0.0, seconds) / 3600.0
