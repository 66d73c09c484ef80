"""Fixtures: a real sshd per test module (its own keys and port)."""

from .sshd import sshd

__all__ = ["sshd"]
