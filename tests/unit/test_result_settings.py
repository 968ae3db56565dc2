"""RESULT_* settings: how long results and job rows stay, and what RESULT_STORE=s3 needs."""

from __future__ import annotations

import pydantic
import pytest

from comfy_gateway.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_results_stay_as_long_as_the_job_by_default() -> None:
    s = settings(job_cleanup_interval=120_000)
    assert s.result_ttl_s == 120 and s.job_retention_s == 120


def test_a_longer_result_ttl_keeps_the_job_row_as_long() -> None:
    s = settings(job_cleanup_interval=60_000, result_ttl=3_600_000)
    assert s.result_ttl_s == 3600 and s.job_retention_s == 3600


def test_a_shorter_result_ttl_leaves_the_row_for_its_410() -> None:
    s = settings(job_cleanup_interval=600_000, result_ttl=5_000)
    assert s.result_ttl_s == 5 and s.job_retention_s == 600


def test_s3_needs_a_bucket_and_urls_have_a_bounded_ttl() -> None:
    with pytest.raises(pydantic.ValidationError, match="S3_BUCKET"):
        settings(result_store="s3")
    assert settings(result_store="s3", s3_bucket="b").s3_prefix == "comfy-gateway"
    with pytest.raises(pydantic.ValidationError):
        settings(result_url_ttl=8 * 86_400_000)  # S3 signs for 7 days at most
