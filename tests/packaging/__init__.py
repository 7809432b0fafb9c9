"""Tests of what is published: README as a new user follows it."""
