"""How much a console form may send, and what the page says when a form sends more.

Every console form is held to the API's 1 MiB but the auditor's verify form, which takes an attestation bundle
and a key registry of up to Lethe's document limit (16 MiB) each. A larger body is refused before it is read
(`lethe.api.headers.BodyLimit`, which asks `lethe.console.mount.too_large_page` for the page), and a file over
16 MiB inside an allowed body when it is read: both answer 413 with the message below.
"""

from __future__ import annotations

from lethe.api.headers import MAX_BODY_BYTES
from lineage.limits import MAX_DOCUMENT_BYTES

PREFIX = "/console"
VERIFY_PATH = "/console/auditor/verify"
VERIFY_MAX_BYTES = 2 * MAX_DOCUMENT_BYTES + 2**20  # a bundle and a registry, each within Lethe's document limit
LARGER_BODIES = {VERIFY_PATH: VERIFY_MAX_BYTES}


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def too_large_message(path: str) -> str:
    """What went wrong with a form at `path` that sent too much, naming the limit, and what to do instead."""
    if path == VERIFY_PATH:
        return (f"The file you chose is larger than this form takes: an attestation bundle and a key registry may "
                f"be up to {_mib(MAX_DOCUMENT_BYTES)} each. Nothing of it was read or kept. Check that you chose "
                "the bundle itself (the file the request's report page offers to download), then upload it again.")
    return (f"The form sent more than {_mib(MAX_BODY_BYTES)}, which is more than any form here takes: a request is "
            "a few identifiers, dates and a reason. Nothing was saved. Go back, shorten what was pasted into the "
            "form, and send it again.")
