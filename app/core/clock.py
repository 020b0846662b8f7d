"""The one clock and the one leeway.

Every module that needs the time takes a ``Clock`` (a callable returning Unix seconds) instead of
reading ``time.time()`` itself, so tests control time. Times on the wire are always absolute Unix
seconds, never "seconds from now".
"""

import time
from collections.abc import Callable
from typing import Final

Clock = Callable[[], float]

#: Allowed disagreement, in seconds, between our clock and a peer's (an upload API checking our
#: ``expire``/``exp``, or a client's clock). Used wherever a time is compared, and nowhere else.
LEEWAY_SECONDS: Final = 30

#: The upload API refuses a credential that expires more than this far ahead (ImageKit: "less
#: than 1 hour into the future"; v2: ``exp - iat <= 3600``).
MAX_CREDENTIAL_LIFETIME: Final = 3600


#: The wall-clock time in Unix seconds: ``time.time`` itself, called on every request (a
#: wrapper would add a Python call each time).
system_clock: Clock = time.time


def unix_now(clock: Clock) -> int:
    """Return the clock's time as whole Unix seconds."""
    return int(clock())


def now_ms(clock: Clock) -> int:
    """Return the clock's time as whole Unix milliseconds (the ledger's and the events' unit)."""
    return int(clock() * 1000)
