"""The import step seen as a stage (for failure reports)."""

from dgc.pipelines.stage import Stage

IMPORT_STAGE = Stage("import", "ONNX to TOSA")
