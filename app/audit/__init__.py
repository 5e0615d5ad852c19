"""The audit log: who did what to accounts, settings and residents' data, when and from where."""
