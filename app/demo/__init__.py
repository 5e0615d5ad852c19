"""Demo data: a realistic street with communities, compounds, firms, users and cases."""
