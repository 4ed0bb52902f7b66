"""The API process: `python -m services.api` (uvicorn, one process: Faust-style apps do not fork)."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from services.config import Settings
from services.topics import ensure_topics


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(name)s: %(message)s")
    ensure_topics(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


if __name__ == "__main__":
    main()
