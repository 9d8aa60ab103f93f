"""Threativator's shared package: everything the cloud functions have in common."""
