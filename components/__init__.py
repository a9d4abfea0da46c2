"""funnel components: the framework-light library behind the flows (never imports prefect)."""
