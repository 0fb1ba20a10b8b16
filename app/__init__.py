"""Streamlit-side helpers: the cached platform handle, navigation, shared widgets and charts."""
