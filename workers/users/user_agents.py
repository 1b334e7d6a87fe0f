"""Device type and browser from a User-Agent header, with ua-parser, for session events that
carry no `latest_activity`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ua_parser

MOBILE_SYSTEMS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})
TABLET_DEVICES = ("iPad", "Kindle", "Tablet")


@dataclass(frozen=True)
class ParsedAgent:
    device_type: str | None  # desktop, mobile, tablet or bot (the values Clerk reports)
    browser: str | None


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str) -> ParsedAgent:
    result = ua_parser.parse(user_agent)
    family = result.user_agent.family if result.user_agent else None
    device = result.device.family if result.device else ""
    system = result.os.family if result.os else ""
    if device == "Spider":
        device_type = "bot"
    elif any(word in device for word in TABLET_DEVICES) or (
        # Android tablets are the Android browsers that do not say "Mobile" (Google's advice).
        system == "Android" and "Mobile" not in user_agent
    ):
        device_type = "tablet"
    elif system in MOBILE_SYSTEMS:
        device_type = "mobile"
    elif family is None and not system:
        device_type = None
    else:
        device_type = "desktop"
    return ParsedAgent(device_type=device_type, browser=family)
