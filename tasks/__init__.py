"""Task definitions: one TOML file per task, read by ``prmh.plugins.task_files``."""
