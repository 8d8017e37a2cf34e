"""Switchboard front door, CLI and in-process SDK entry points."""
