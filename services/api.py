"""The API process: `python -m services.api` (uvicorn, one process: Faust-style apps do not fork).

It needs the broker to start; the database it connects to in the background (api/app.py), so that it
starts, and serves the live figures, while the database is down.
"""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from services.config import Settings
from services.topics import ensure_topics


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        app = create_app(settings)
    except ValueError as exc:  # listening beyond loopback without SQM_API_ALLOWED_HOSTS or SQM_READ_AUTH
        raise SystemExit(f"api: {exc}") from None
    ensure_topics(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips=settings.api_trusted_proxies)


if __name__ == "__main__":
    main()
