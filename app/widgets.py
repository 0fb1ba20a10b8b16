"""Streamlit widgets shared by the pages."""

from __future__ import annotations

import streamlit as st

# pages/monitor.py (being reworked for issue 23) still imports these four from here; once it imports
# them from app.formatting and app.charts, these lines go.
from app.charts import feature_shift_figure, traffic_figure  # noqa: F401
from app.formatting import drift_table, when  # noqa: F401


def field_input(box, field, key: str):
    """The widget a schema field asks for (``churn_core.endpoints.forms.FormField``), in a container ``box``.

    Number fields start at the typical value but may be emptied: an empty field is "not known" where
    training saw blanks, and a problem the form names where it did not (never silently the median).
    """
    from churn_core.endpoints.forms import UNKNOWN

    if field.widget == "yes_no":
        words = {0: "no (0)", 1: "yes (1)", UNKNOWN: UNKNOWN}
        return box.selectbox(field.name, list(field.options), index=list(field.options).index(field.default),
                             key=key, help=field.help, format_func=words.get)
    if field.widget in ("integer", "number"):
        if key not in st.session_state and field.default is not None:  # the typical value; clearing gives None
            st.session_state[key] = int(field.default) if field.widget == "integer" else float(field.default)
        placeholder = "unknown" if field.allow_missing else "a number is needed"
        if field.widget == "integer":
            return box.number_input(field.name, value=None, step=1, key=key, help=field.help,
                                    placeholder=placeholder)
        return box.number_input(field.name, value=None, step=field.step, key=key, help=field.help,
                                format=f"%.{field.decimals}f", placeholder=placeholder)
    return box.selectbox(field.name, field.options, index=field.options.index(field.default), key=key,
                         help=field.help)
