"""Training machinery: loops and hooks (exact resume)."""
from .hooks import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
