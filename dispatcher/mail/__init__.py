"""Email messages: headers that cannot be injected into, and MIME built for speed."""

from dispatcher.mail.message import (
    EmailComposer,
    check_header_value,
    message_id_for,
    parse_mailbox,
)

__all__ = ["EmailComposer", "check_header_value", "message_id_for", "parse_mailbox"]
