"""Figures for supervisors: the three rates (DESIGN §5) and, later, firm ratings and bulletins."""
