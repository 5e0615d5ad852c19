"""Attachment storage under ``UPLOAD_DIR``: checked by content, not by what the client claims.

Images are decoded and re-encoded with Pillow (EXIF and GPS dropped, anything appended gone); PDFs
are kept as they are and only ever served as downloads in a sandbox (``app/core/headers.py``).

Files are written before the database row is flushed; if the transaction is rolled back, the files
written in it are removed again, so a failed request leaves neither a row nor an orphaned file.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.errors import ValidationError
from app.core.timeutil import utcnow
from app.extensions import db

#: accepted types, recognised by their first bytes
SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
MAX_FILENAME = 200
MAX_FILES_PER_ACTION = 9


def sniff(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) for the accepted formats, else None."""
    for signature, content_type, extension in SIGNATURES:
        if head.startswith(signature):
            return content_type, extension
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", ".webp"
    return None


#: Pillow's name of each accepted image type
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
#: larger pictures are refused (a decompression bomb is a few KB that decodes to gigabytes)
MAX_IMAGE_PIXELS = 40_000_000


def reencode_image(data: bytes, content_type: str, name: str) -> bytes:
    """Decode an image and encode it again: only real images are kept, without EXIF (GPS) or trailers.

    The orientation recorded in EXIF is applied to the pixels first, so photos stay upright. Animated
    GIFs keep their first frame. Raises :class:`ValidationError` when the file does not decode as the
    type its first bytes claim, or is larger than ``MAX_IMAGE_PIXELS``.
    """
    import io
    import warnings

    from PIL import Image, ImageOps

    refused = ValidationError(
        _("The file %(name)s is not a readable JPEG, PNG, GIF or WebP image.", name=name), field="photos"
    )
    expected = PILLOW_FORMATS[content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[expected]) as probe:
                probe.verify()
            with Image.open(io.BytesIO(data), formats=[expected]) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise refused
                image.load()
                upright = ImageOps.exif_transpose(image)
                out = io.BytesIO()
                if expected == "JPEG":
                    if upright.mode not in ("RGB", "L"):
                        upright = upright.convert("RGB")
                    upright.save(out, "JPEG", quality=90)
                elif expected == "GIF":
                    upright.save(out, "GIF")
                elif expected == "WEBP":
                    upright.save(out, "WEBP", quality=90)
                else:
                    upright.save(out, "PNG")
    except ValidationError:
        raise
    except Exception:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, ValueError, bombs…)
        raise refused from None
    return out.getvalue()


def upload_root() -> Path:
    return Path(current_app.config["UPLOAD_DIR"])


def store(case, data: bytes, filename: str, actor, event_row=None):
    """Validate and store one file for ``case``; returns the flushed :class:`Attachment`.

    Raises :class:`ValidationError` for an empty or too large file or an unsupported type.
    """
    from app.cases.models import Attachment

    name = os.path.basename((filename or "").replace("\\", "/")).strip()[:MAX_FILENAME] or "upload"
    if not data:
        raise ValidationError(_("The file %(name)s is empty.", name=name), field="photos")
    limit = current_app.config["MAX_ATTACHMENT_BYTES"]
    if len(data) > limit:
        raise ValidationError(
            _("The file %(name)s is larger than %(mb)d MB.", name=name, mb=limit // (1024 * 1024)), field="photos"
        )
    kind = sniff(data[:16])
    if kind is None:
        raise ValidationError(
            _("The file %(name)s is not a JPEG, PNG, GIF, WebP image or a PDF.", name=name), field="photos"
        )
    content_type, extension = kind
    if content_type.startswith("image/"):
        data = reencode_image(data, content_type, name)
    now = utcnow()
    relative = f"{now:%Y}/{now:%m}/{uuid.uuid4().hex}{extension}"
    path = upload_root() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    db.session.info.setdefault("written_files", []).append(str(path))
    attachment = Attachment(
        case_id=case.id,
        event_id=event_row.id if event_row is not None else None,
        filename=name,
        stored_name=relative,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by_id=getattr(actor, "id", None),
        created_at=now,
    )
    db.session.add(attachment)
    db.session.flush()
    return attachment


def path_of(attachment) -> Path:
    """The file on disk. Raises ``ValueError`` if the stored name escapes the upload directory."""
    root = upload_root().resolve()
    path = (root / attachment.stored_name).resolve()
    if root not in path.parents:
        raise ValueError("attachment path outside the upload directory")
    return path


@event.listens_for(Session, "after_commit")
def _forget_written_files(session):
    session.info.pop("written_files", None)


@event.listens_for(Session, "after_soft_rollback")
def _remove_files_of_rolled_back_work(session, previous_transaction):
    if previous_transaction.parent is not None:  # a savepoint inside the unit of work
        return
    for name in session.info.pop("written_files", []):
        try:
            os.remove(name)
        except OSError:
            pass
