"""Residents' privacy rights: masked phones revealed with a reason, export and anonymisation on request."""
