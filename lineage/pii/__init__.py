"""PII scanning with Presidio, offline: which subjects a record mentions, as subject keys only."""

from lineage.pii.engine import BLANK, PiiEngineError
from lineage.pii.scanner import Mention, PiiScanner, ScanResult

__all__ = ["BLANK", "Mention", "PiiEngineError", "PiiScanner", "ScanResult"]
