"""Home, health check, language switch and error pages."""
