"""The streaming side: Faust app, validation and dead letters, feature tables, scoring, health."""
