"""pipeline.yml: pydantic models and a loader whose errors point at file, line and field."""

from .loader import load_pipeline, pipeline_schema
from .models import Codec, Output, Pipeline, Rule, Source

__all__ = ["Codec", "Output", "Pipeline", "Rule", "Source", "load_pipeline", "pipeline_schema"]
