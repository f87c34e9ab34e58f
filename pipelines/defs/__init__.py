"""The only Dagster code: resources, assets, checks, sensors, schedules, jobs, the Definitions,
and the in-process runner. Each asset body is one call into `pipelines.steps`."""
