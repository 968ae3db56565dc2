"""Observability: structured logs, job metrics (JSON, persisted) and Prometheus metrics.

Nothing here is global: the app's lifespan calls `configure_logging` once and builds one
`JobMetrics` and one `PromMetrics`, then passes them to whoever records or reads them.
"""

from .job_metrics import JobMetrics
from .logging import close_logging, configure_logging, get_logger
from .prometheus import PromMetrics

__all__ = ["JobMetrics", "PromMetrics", "close_logging", "configure_logging", "get_logger"]
