"""Callouts: named credentials and asynchronous (Fire and Forget, Request and Reply) HTTP calls from the org."""
