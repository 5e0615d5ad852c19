"""The city's 12345 hotline platform: its work-order exports come in as cases, results go back as its return sheet."""
