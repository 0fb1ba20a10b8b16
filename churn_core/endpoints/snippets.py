"""Copy-paste client code for a deployed endpoint, built from its model's schema.

The example customer is the training data's typical one (``forms.example_record``: medians and
most common categories), so the snippet works as pasted for any model, in both request forms
the endpoint takes (positional ``Input`` and named ``instances``), plus a ``curl`` line.
"""

from __future__ import annotations

import json

from churn_core.endpoints.forms import example_record


def client_snippets(backend, endpoint_name: str, endpoint_url: str, schema: dict) -> dict[str, str]:
    """{"python": boto3 code, "curl": a shell line} that send the example customer to the endpoint."""
    record = example_record(schema)
    row = list(record.values())
    order = ", ".join(record)
    named = json.dumps({"instances": [record]})
    python = f"""import boto3, json

runtime = {backend.runtime_client_code(endpoint_url)}

# One customer by position, in the model's feature order: {order}
resp = runtime.invoke_endpoint(EndpointName="{endpoint_name}", ContentType="application/json",
                               Body=json.dumps({json.dumps({"Input": [row]})}))
print(json.loads(resp["Body"].read()))  # {{"Output": 0 or 1, "Probability": ...}}

# The same customer by name (extra ID columns are echoed back with the prediction)
resp = runtime.invoke_endpoint(EndpointName="{endpoint_name}", ContentType="application/json",
                               Body=json.dumps({named}))
print(json.loads(resp["Body"].read()))  # {{"predictions": [{{"label": ..., "churn_probability": ...}}]}}
"""
    return {"python": python, "curl": backend.curl_command(endpoint_name, endpoint_url, named)}
