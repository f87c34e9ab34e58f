"""The HTTP consent service (`consentgen serve`): the ledger's one writer while it runs.

A FastAPI app under `/v1` with bearer tokens and roles, a hash-chained access log of
every request, signed webhooks for consent-management platforms, and the withdrawal a
revoke calls for run at once. Nothing here imports Dagster.
"""
