"""Tables of the detection stage: the part-file and output schemas (CONTRACTS.md), the stage
name of quarantine rows and the stage's error."""

from __future__ import annotations

import pyarrow as pa

from activepam.detection import birdnet as bn
from activepam.detection.inventory import INVENTORY_SCHEMA

STAGE = "detect"
#: bump when the part-file layout or its computation changes (invalidates cached parts)
PARTS_VERSION = 2
PART_KINDS = ("embeddings", "predictions", "segments")  # segments last = done marker
META_COLUMNS = ("device_id", "site", "country", "habitat", "lat", "lon", "start_time")
QUARANTINE_COLUMNS = ["path", "stage", "reason"]
UTC_US = pa.timestamp("us", tz="UTC")

SEGMENT_PART_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("recording_id", pa.string()),
        ("path", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("top1_species", pa.string()),
        ("top1_confidence", pa.float64()),
        ("top2_confidence", pa.float64()),
        ("margin", pa.float64()),
        ("max_binary_entropy", pa.float64()),
        ("mean_binary_entropy", pa.float64()),
        ("nonfinite_samples", pa.int64()),
        ("species_set", pa.string()),
    ]
)
#: Parquet metadata key of the content key a segments part was computed from
CONTENT_KEY = b"activepam.content_key"
# recording metadata carried into segments.parquet: the inventory's own column types
META_SCHEMA = pa.schema([INVENTORY_SCHEMA.field(c) for c in ("recording_id", *META_COLUMNS)])
SEGMENTS_SCHEMA = pa.schema(
    list(SEGMENT_PART_SCHEMA)
    + [META_SCHEMA.field(c) for c in META_COLUMNS]
    + [pa.field("segment_time", UTC_US)]
)
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("recording_id", pa.string()),
        ("path", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("rank", pa.int32()),
        ("species", pa.string()),
        ("confidence", pa.float32()),
    ]
)
EMBEDDINGS_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("recording_id", pa.string()),
        ("start_s", pa.float64()),
        ("embedding", pa.list_(pa.float32(), bn.EMBEDDING_DIM)),
    ]
)
OUTPUT_SCHEMAS = {
    "segments": SEGMENTS_SCHEMA,
    "predictions": PREDICTIONS_SCHEMA,
    "embeddings": EMBEDDINGS_SCHEMA,
}


class DetectError(RuntimeError):
    """Bad detection input or parameters (message names the file or the parameter)."""
