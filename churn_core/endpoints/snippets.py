"""Copy-paste client code for a deployed endpoint, built from its model's schema.

The example customer is the training data's typical one (``forms.example_record``: medians and
most common categories), so the snippet works as pasted for any model, in both request forms
the endpoint takes (positional ``Input`` and named ``instances``), plus a ``curl`` line.
"""

from __future__ import annotations

import json

from churn_core.endpoints.forms import example_record


def client_snippets(backend, endpoint_name: str, endpoint_url: str, schema: dict, auth: str = "") -> dict[str, str]:
    """{"python": boto3 code, "curl": a shell line} that send the example customer to the endpoint; ``auth`` says
    how callers authenticate (``tokens.snippet_auth``): "bearer" adds the endpoint's token header, "sigv4" says
    that AWS signs the request."""
    record = example_record(schema)
    row = list(record.values())
    order = ", ".join(record)
    named = json.dumps({"instances": [record]})
    python = f"""import boto3, json

runtime = {backend.runtime_client_code(endpoint_url)}
{_AUTH_CODE.get(auth, "")}
# One customer by position, in the model's feature order: {order}
resp = runtime.invoke_endpoint(EndpointName="{endpoint_name}", ContentType="application/json",
                               Body=json.dumps({json.dumps({"Input": [row]})}))
print(json.loads(resp["Body"].read()))  # {{"Output": 0 or 1, "Probability": ...}}

# The same customer by name (extra ID columns are echoed back with the prediction)
resp = runtime.invoke_endpoint(EndpointName="{endpoint_name}", ContentType="application/json",
                               Body=json.dumps({named}))
print(json.loads(resp["Body"].read()))  # {{"predictions": [{{"label": ..., "churn_probability": ...}}]}}
"""
    curl = backend.curl_command(endpoint_name, endpoint_url, named)
    if auth == "bearer":
        curl = curl.replace("curl -s ", 'curl -s -H "Authorization: Bearer $CHURN_ENDPOINT_TOKEN" ', 1)
    return {"python": python, "curl": curl}


_AUTH_CODE = {
    "bearer": """# This endpoint needs its bearer token (an admin issues it once: p.endpoint_token(<endpoint>))
import os
runtime.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", lambda request, **_: request.headers
                             .__setitem__("Authorization", "Bearer " + os.environ["CHURN_ENDPOINT_TOKEN"]))
""",
    "sigv4": """# SageMaker endpoints require AWS SigV4: boto3 signs each request with your IAM credentials, which must
# allow sagemaker:InvokeEndpoint on this endpoint (no other token exists or is needed).
""",
}
