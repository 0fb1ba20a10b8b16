"""The environment variables our requests set for the model container, named once for both sides.

The dashboard sets them (a deployed model's threshold, a transform job's switches); the container's code
reads them. Both import the names from here, so the two can never spell one differently.
"""

from __future__ import annotations

THRESHOLD_ENV = "CHURN_THRESHOLD"  # the decision threshold of the model a container serves
VARIANT_ENV = "CHURN_VARIANT"  # the production variant the container serves (named in each named-record answer)
TRANSFORM_ENV = "CHURN_BATCH_TRANSFORM"  # our CreateTransformJob sets it: answer every line of a mini-batch
REASONS_ENV = "CHURN_TRANSFORM_REASONS"  # and this when the job asks for each line's top reason
