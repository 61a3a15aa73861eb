"""Streamlit helpers shared by the pages: the store handle, friendly errors, small widgets."""
