"""Fault injection: killed backends, server restarts and crashes, fork."""
