"""Every setting of the gateway, read once from the environment (and `.env`) into one typed object.

Durations keep the units of the original middleware (milliseconds) so its `.env` files work as-is.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["error", "warn", "warning", "info", "debug"]
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, case_sensitive=False)

    # --- the original middleware's variables ---
    port: int = Field(3000, ge=0, le=65535)
    comfyui_host: str = "127.0.0.1:8188"
    comfyui_use_ssl: bool = False
    output_files: bool = False
    max_connections_per_instance: int = Field(3, ge=1, le=64)
    job_timeout: int = Field(300_000, ge=100, description="ms a job may run before it is interrupted")
    job_cleanup_interval: int = Field(600_000, ge=1_000, description="ms; finished jobs older than this go")
    max_concurrent_jobs: int = Field(4, ge=1)
    max_jobs_per_instance: int = Field(2, ge=1)
    job_processing_interval: int = Field(1_000, ge=10, description="ms; safety sweep of the event-driven dispatcher")
    metrics_file_path: Path = Path("./data/metrics/metrics.json")
    metrics_save_interval: int = Field(300_000, ge=1_000)
    log_level: LogLevel = "info"
    # COMFYUI_HOST_1 / COMFYUI_HOST_2 of the original's dual-instance setup
    comfyui_host_1: str | None = None
    comfyui_host_2: str | None = None

    # --- this gateway's own ---
    host: str = "127.0.0.1"
    comfyui_hosts: str | None = Field(None, description="comma-separated host:port list; wins over COMFYUI_HOST*")
    data_dir: Path = Path("./data")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1)
    blob_cache_bytes: int = Field(32 * 1024 * 1024, ge=0, description="recent images kept in memory")
    memory_trim_interval: int = Field(500, ge=0, description="ms between checks that give free memory back to "
                                                         "the system after a burst of uploads (0: never)")
    idempotency_ttl: int = Field(86_400_000, ge=1_000, description="ms an Idempotency-Key names its job")
    max_attempts: int = Field(3, ge=1, le=20)
    health_check_interval: int = Field(10_000, ge=100, description="ms between /system_stats probes")
    health_check_timeout: int = Field(3_000, ge=100)
    queue_timeout: int = Field(600_000, ge=1_000, description="ms a job may wait pending before it fails")
    shutdown_grace: int = Field(30_000, ge=0, description="ms running jobs get to finish on SIGTERM")
    lease_duration: int = Field(30_000, ge=1_000, description="ms; a job's lease, renewed while it runs")
    input_mode: Literal["manifest", "base64", "upload"] = "manifest"
    workflows_dir: Path | None = None
    job_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "comfy-gateway"
    shared_blob_dir: Path | None = Field(None, description="with JOB_STORE=redis: blobs in this shared directory")
    replica_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    # --- placement: capabilities, warm models, estimates ---
    placement: Literal["affinity", "least_loaded"] = Field(
        "affinity", description="affinity: lowest expected finish (queue + service + model switch); "
                                "least_loaded: fewest jobs. Both only pick servers that can run the job")
    model_switch_cost: int = Field(2_000, ge=0, description="ms a model switch is assumed to cost until measured")
    capabilities_refresh_interval: int = Field(300_000, ge=1_000, description="ms between /object_info reads")

    # --- results: every output file, where it is kept and for how long ---
    result_store: Literal["blobs", "s3"] = "blobs"
    result_ttl: int | None = Field(None, ge=1_000, description="ms results stay downloadable after the job "
                                                               "ends; default JOB_CLEANUP_INTERVAL")
    result_url_ttl: int = Field(3_600_000, ge=1_000, le=604_800_000, description="ms a presigned URL is valid")
    result_redirect: bool = Field(True, description="with s3, downloads redirect to the presigned URL")
    s3_bucket: str | None = None
    s3_prefix: str = "comfy-gateway"
    s3_endpoint_url: str | None = None

    # --- limits on what a client connection may send (http_server.py) ---
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="larger request headers get 431")
    max_headers: int = Field(100, ge=8, description="more request headers get 431")
    max_url_bytes: int = Field(8 * 1024, ge=256, description="a longer request target gets 414")
    client_read_timeout: int = Field(30_000, ge=100, description="ms a client may stay silent mid-request")
    keep_alive_timeout: int = Field(5_000, ge=1_000, description="ms an idle keep-alive connection stays open")
    max_connections: int = Field(900, ge=1, description="open connections past this get 503 (stay below ulimit -n)")
    # --- access control, admission, webhooks ---
    api_keys_file: Path | None = Field(None, description="TOML file of [[keys]]; none: no keys, one tenant")
    metrics_public: bool = Field(False, description="metrics (and so the dashboard's charts) without an admin key")
    allow_insecure_bind: bool = Field(False, description="serve on a non-loopback HOST without API keys")
    cors_origins: str = Field("", description="comma-separated origins allowed to call from a browser")
    max_queue_depth: int = Field(0, ge=0, description="pending jobs in all; past it 429 and /ready 503 (0: no cap)")
    webhook_secret: str | None = Field(None, description="Standard Webhooks secret: whsec_<base64> or base64")
    webhook_allow_hosts: str = Field("", description="hosts, addresses or networks webhooks may reach though private")
    webhook_timeout: int = Field(10_000, ge=100, le=120_000, description="ms per webhook delivery attempt")
    # --- limits on what a ComfyUI server may send back ---
    max_upstream_json_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024,
                                         description="a larger JSON answer (/history...) is the server's fault")
    max_upstream_frame_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024,
                                          description="a larger WebSocket message drops the event socket")
    max_result_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="a larger output file fails the job")
    max_result_pixels: int = Field(40_000_000, ge=1, description="a result image declaring more fails the job")

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an explicit origin like https://app.example.com[:port]")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _base64_secret(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if not base64.b64decode(value.removeprefix("whsec_"), validate=True):
                    raise ValueError("empty")
            except (binascii.Error, ValueError):
                raise ValueError("must be whsec_ followed by base64 (Standard Webhooks)") from None
        return value

    # --- operations: tracing (the OpenTelemetry SDK's own variable names) ---
    otel_sdk_disabled: bool = False
    otel_traces_exporter: str | None = Field(None, description="otlp turns tracing on; none keeps it off")
    otel_exporter_otlp_endpoint: str | None = Field(None, description="OTLP/HTTP base URL; /v1/traces is added")
    otel_exporter_otlp_traces_endpoint: str | None = Field(None, description="full OTLP/HTTP traces URL")
    otel_exporter_otlp_protocol: Literal["http/protobuf"] | None = Field(
        None, description="the gateway sends OTLP over HTTP (protobuf) only")

    @field_validator("comfyui_hosts", "comfyui_host_1", "comfyui_host_2", "comfyui_host")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_hosts(self) -> Settings:
        for host in self.instance_hosts:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"COMFYUI_HOSTS: {host!r} is not host:port")
        return self

    @model_validator(mode="after")
    def _check_result_store(self) -> Settings:
        if self.result_store == "s3" and not self.s3_bucket:
            raise ValueError("RESULT_STORE=s3 needs S3_BUCKET")
        return self

    @property
    def result_ttl_s(self) -> float:
        return (self.result_ttl if self.result_ttl is not None else self.job_cleanup_interval) / 1000

    @property
    def job_retention_s(self) -> float:
        """How long a finished job's row stays: at least as long as its results."""
        return max(self.job_cleanup_interval / 1000, self.result_ttl_s)

    @cached_property
    def instance_hosts(self) -> tuple[str, ...]:
        """The ComfyUI servers, in configuration order, without duplicates."""
        if self.comfyui_hosts:
            raw = self.comfyui_hosts.split(",")
        elif self.comfyui_host_1 or self.comfyui_host_2:
            raw = [h for h in (self.comfyui_host_1, self.comfyui_host_2) if h]
        else:
            raw = [self.comfyui_host]
        hosts = [h.strip().removeprefix("http://").removeprefix("https://").rstrip("/") for h in raw]
        return tuple(dict.fromkeys(h for h in hosts if h))

    def base_url(self, host: str) -> str:
        return f"{'https' if self.comfyui_use_ssl else 'http'}://{host}"

    # Durations in seconds, for the code that sleeps or times out.
    @property
    def job_timeout_s(self) -> float:
        return self.job_timeout / 1000

    @property
    def queue_timeout_s(self) -> float:
        return self.queue_timeout / 1000

    @property
    def lease_s(self) -> float:
        return self.lease_duration / 1000

    @property
    def model_switch_cost_s(self) -> float:
        return self.model_switch_cost / 1000

    @property
    def capabilities_refresh_s(self) -> float:
        return self.capabilities_refresh_interval / 1000

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def webhook_allow_list(self) -> list[str]:
        return [h.strip() for h in self.webhook_allow_hosts.split(",") if h.strip()]

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def jobs_db_path(self) -> Path:
        return self.data_dir / "jobs.db"

    @property
    def tracing_enabled(self) -> bool:
        """Off by default: on with OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint, unless disabled."""
        exporter = (self.otel_traces_exporter or "").strip().lower()
        if self.otel_sdk_disabled or exporter == "none":
            return False
        return exporter == "otlp" or bool(self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint)

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """Where spans go (None: the SDK's default, http://localhost:4318/v1/traces)."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None
