"""Cross-cutting pieces every feature uses: time, column types, domain errors, i18n helpers."""
