"""Cases: categories, intake, the workflow engine binding, events and attachments."""
